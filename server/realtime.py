"""Wiring of the realtime core: the actors on real storage, the hub's life, admin view."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from actors.assistant import AssistantConfig
from actors.close_reason import CloseReason
from actors.hub import Hub, HubConfig
from actors.ports import Verified
from actors.room_messages import AssistantDeps, FaultHook
from actors.session import SessionLimits
from server import control, ws
from server.auth.guard import require_admin
from server.http import shapes
from server.http.json import json_response
from server.http.operation import answers
from server.llm.factory import LLMTuning, build_llm
from server.llm.resilience import ResilientLLM
from server.probe import Probe
from server.state import (
    BUS,
    CACHE,
    DATABASE,
    HUB,
    METRICS,
    PROBE,
    QUOTAS,
    REDIS,
    REVOCATIONS,
    SETTINGS,
)
from storage.bus import RedisStreamBus
from storage.message_store import SqlMessageStore, SqlRoomDirectory
from storage.presence import MemoryPresence, Presence, RedisPresence
from storage.room_lists import RoomListCache

logger = logging.getLogger(__name__)

#: The model behind the assistant (with its breaker), for tests and metrics.
LLM_KEY = web.AppKey("llm", ResilientLLM)

#: Test-only: set before startup to make RoomActors crash on chosen messages.
FAULTS: web.AppKey[FaultHook] = web.AppKey("faults")


async def _hub(app: web.Application) -> AsyncIterator[None]:
    database = app[DATABASE]
    metrics = app[METRICS]
    settings = app[SETTINGS]

    async def verify(token: str) -> Verified:
        return await ws.verify_token(app, token)

    llm = build_llm(
        settings,
        LLMTuning(
            first_token_timeout=settings.ai_first_token_timeout,
            idle_timeout=settings.ai_idle_timeout,
            request_timeout=settings.ai_request_timeout,
            retries=settings.ai_retries,
            backoff_base=settings.ai_backoff_base,
            breaker_failures=settings.ai_breaker_failures,
            breaker_cooldown=settings.ai_breaker_cooldown,
            offline_delay=settings.ai_offline_delay,
        ),
    )
    await llm.warm_up()
    app[LLM_KEY] = llm
    assistant = AssistantDeps(
        llm,
        app[QUOTAS],
        AssistantConfig(
            context_tokens=settings.ai_context_tokens,
            max_output_tokens=settings.ai_max_output_tokens,
            queue_size=settings.ai_queue_size,
        ),
    )
    bus = app[BUS]
    redis = app[REDIS]
    probe: Probe | None = None
    presence: Presence = MemoryPresence()
    if isinstance(bus, RedisStreamBus) and redis is not None:
        probe = Probe(bus, bus.instance_id, metrics.bus_probe_lag)
        presence = RedisPresence(
            redis,
            bus.instance_id,
            key_of=lambda room_id: f"{bus.stream_key(f'room:{room_id}')}:presence",
            ttl=settings.presence_ttl,
        )
    hub = Hub(
        store=SqlMessageStore(database, RoomListCache(app[CACHE])),
        directory=SqlRoomDirectory(database),
        bus=app[BUS],
        verify=verify,
        config=HubConfig(
            session_limits=SessionLimits(
                expiry_grace=settings.ws_token_grace, heartbeat=settings.ws_heartbeat
            ),
            tick_interval=settings.tick_interval,
            interrupt_after=settings.ai_interrupt_after,
        ),
        fault=app.get(FAULTS),
        assistant=assistant,
        presence=presence,
        bus_ready=probe.healthy if probe is not None else lambda: True,
        on_crash=lambda name, exc: metrics.actor_crashes.labels(name.split(":")[0]).inc(),
        on_tell_failed=lambda kind, message, error: metrics.actor_tells_failed.labels(
            kind, message, error
        ).inc(),
    )
    app[HUB] = hub
    unregister = app[REVOCATIONS].register(lambda user_id: _revoked(hub, user_id))
    unregister_sign_ins = app[REVOCATIONS].register_sign_in(
        lambda user_id, family_id: _sign_in_revoked(hub, user_id, family_id)
    )
    hub.start()
    control_subscription = await control.subscribe(app)
    if probe is not None:
        app[PROBE] = probe
        await probe.start()
    yield
    if probe is not None:
        await probe.stop()
    control_subscription.close()
    app[REVOCATIONS].route_through(None)
    unregister()
    unregister_sign_ins()
    await hub.close()
    await llm.close()


def _revoked(hub: Hub, user_id: str) -> None:
    closed = hub.revoke_user(user_id)
    logger.info("tokens of user=%s revoked: closing %d websockets", user_id, closed)


def _sign_in_revoked(hub: Hub, user_id: str, family_id: str) -> None:
    closed = hub.revoke_sign_in(user_id, family_id)
    logger.info("sign-in %s of user=%s revoked: closing %d websockets", family_id, user_id, closed)


@answers(200, shapes.ActorTree, errors=(403,))
@require_admin
async def actor_tree(request: web.Request) -> web.Response:
    """The live actor tree: name, kind, state, mailbox depth, restarts, age, children."""
    tree = [dataclasses.asdict(node) for node in request.app[HUB].snapshot()]
    return json_response({"items": tree})


async def _going_away(app: web.Application) -> None:
    """On shutdown, tell every client to reconnect elsewhere before sockets drop."""
    if HUB in app:
        app[HUB].close_all(CloseReason.SHUTDOWN)


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_hub)
    app.on_shutdown.append(_going_away)
    ws.setup(app)
    app.router.add_get("/api/v1/admin/actors", actor_tree)
