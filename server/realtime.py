"""Wiring of the realtime core: the actors on real storage, the hub's life, admin view."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from actors.assistant import AssistantConfig
from actors.close_reason import CloseReason
from actors.hub import Hub, HubConfig
from actors.ports import Verified
from actors.room_messages import AssistantDeps, FaultHook
from actors.session import SessionLimits
from errors import Unavailable
from server import control, ws
from server.auth.guard import require_admin
from server.http import shapes
from server.http.json import json_response
from server.http.operation import answers
from server.llm.factory import build_llm
from server.llm.metrics import PrometheusObserver, watch_breaker
from server.llm.resilience import ResilientLLM
from server.probe import Probe
from server.state import (
    BUS,
    CACHE,
    DATABASE,
    HUB,
    METRICS,
    PRESENCE,
    PROBE,
    QUOTAS,
    REDIS,
    REVOCATIONS,
    SETTINGS,
    TOKENS,
)
from storage.db import unavailable_when_down
from storage.message_store import SqlMessageStore, SqlRoomDirectory
from storage.room_lists import RoomListCache

logger = logging.getLogger(__name__)

#: The model behind the assistant (with its breaker), for tests and metrics.
LLM_KEY = web.AppKey("llm", ResilientLLM)

#: Test-only: set before startup to make RoomActors crash on chosen messages.
FAULTS: web.AppKey[FaultHook] = web.AppKey("faults")


async def _realtime(app: web.Application) -> AsyncIterator[None]:
    """The realtime core for the app's life: the model, the hub and its actors, revocations
    and control events routed into the hub, and (across instances) the bus probe."""
    llm = await _start_llm(app)
    await app[QUOTAS].warm_up()
    store = SqlMessageStore(app[DATABASE], RoomListCache(app[CACHE]))
    await _warm_up(store)
    probe = _bus_probe(app)
    hub = app[HUB] = _new_hub(app, llm, store, probe)
    stop_closing_revoked = _close_revoked_sessions(app, hub)
    hub.start()
    control_subscription = await control.subscribe(app)
    if probe is not None:
        app[PROBE] = probe
        app[TOKENS].verified.trust_while(probe.healthy)  # no cached check on a deaf stream
        await probe.start()
    yield
    if probe is not None:
        await probe.stop()
    control_subscription.close()
    app[REVOCATIONS].route_through(None)
    stop_closing_revoked()
    await hub.close()
    await app[QUOTAS].close()  # the prompts granted last are written to usage_counters
    await llm.close()


def _bus_probe(app: web.Application) -> Probe | None:
    """A probe of the bus path when it runs through Redis; the in-process bus cannot go deaf."""
    if app[REDIS] is None:
        return None
    return Probe(app[BUS], app[METRICS].bus_probe_lag)


async def _start_llm(app: web.Application) -> ResilientLLM:
    """The model behind the assistant, as the settings choose it, warmed up."""
    llm = build_llm(app[SETTINGS])
    await llm.warm_up()
    app[LLM_KEY] = llm
    watch_breaker(app[METRICS], llm)
    return llm


async def _warm_up(store: SqlMessageStore) -> None:
    try:
        with unavailable_when_down():
            await store.warm_up()
    except Unavailable as exc:  # only a head start: the first sends do it instead
        logger.warning("message store: warm-up skipped: %s", exc)


def _new_hub(
    app: web.Application, llm: ResilientLLM, store: SqlMessageStore, probe: Probe | None
) -> Hub:
    """The instance's hub on the real storage; it refuses sends while the probe is stale."""
    database, metrics, settings = app[DATABASE], app[METRICS], app[SETTINGS]

    async def verify(token: str) -> Verified:
        return await ws.verify_token(app, token)

    assistant = AssistantConfig(
        context_tokens=settings.ai_context_tokens,
        max_output_tokens=settings.ai_max_output_tokens,
        queue_size=settings.ai_queue_size,
    )
    return Hub(
        store=store,
        # Kept room access is trusted only while the control stream is heard.
        directory=SqlRoomDirectory(database, trusted=probe.healthy if probe else lambda: True),
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
        assistant=AssistantDeps(llm, app[QUOTAS], assistant, PrometheusObserver(metrics)),
        presence=app[PRESENCE],
        bus_ready=probe.healthy if probe is not None else lambda: True,
        on_crash=lambda name, exc: metrics.actor_crashes.labels(name.split(":")[0]).inc(),
        on_tell_failed=lambda kind, message, error: metrics.actor_tells_failed.labels(
            kind, message, error
        ).inc(),
        on_joined=metrics.ws_join_latency.observe,
    )


def _close_revoked_sessions(app: web.Application, hub: Hub) -> Callable[[], None]:
    """Have every revocation close the hub's matching websockets; returns the undo."""
    revocations = app[REVOCATIONS]
    unregister_users = revocations.register(lambda user_id: _revoked(hub, user_id))
    unregister_sign_ins = revocations.register_sign_in(
        lambda user_id, family_id: _sign_in_revoked(hub, user_id, family_id)
    )

    def unregister() -> None:
        unregister_users()
        unregister_sign_ins()

    return unregister


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
    app.cleanup_ctx.append(_realtime)
    app.on_shutdown.append(_going_away)
    ws.setup(app)
    app.router.add_get("/api/v1/admin/actors", actor_tree)
