"""The control stream: events every instance acts on, its own included.

`user_revoked` closes the user's websockets everywhere (4401), `sign_in_revoked` those of
one sign-in (a refresh family: logout, refresh token reuse); `room_deleted` ends the
room's subscriptions everywhere; `member_removed` takes the team's rooms from the user's
sessions everywhere (removed from the team, or left it); `member_changed` (a new role)
makes every instance's cached room access forget the user's role in the team (as
`room_deleted`, `member_removed` and `room_changed` clear what they concern); `plan_changed`
and `member_removed` make the quotas forget the plans they keep (server/billing/quotas.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiohttp import web

from server.auth.revocation import Revoked
from server.state import BUS, HUB, QUOTAS, REVOCATIONS, TOKENS
from storage.bus import BUS_FAILED, BusEvent

logger = logging.getLogger(__name__)

TOPIC = "control"

_pending: set[asyncio.Future[None]] = set()  # keeps notification tasks alive until done


async def announce(app: web.Application, event: dict[str, Any]) -> None:
    """Publish a control event. Raises when the bus is down."""
    await app[BUS].publish(TOPIC, orjson.dumps(event))


async def room_deleted(app: web.Application, room_id: str) -> None:
    """After the commit: every instance's live actor of the room tells its members."""
    try:
        await announce(app, {"type": "room_deleted", "room_id": room_id})
    except BUS_FAILED as exc:  # at least this instance acts at once
        logger.warning("room_deleted for %s not announced: %r", room_id, exc)
        app[HUB].room_deleted(room_id)


async def member_removed(app: web.Application, team_id: str, user_id: str) -> None:
    """After the commit: the user's sessions on every instance leave the team's rooms."""
    try:
        await announce(app, {"type": "member_removed", "team_id": team_id, "user_id": user_id})
    except BUS_FAILED as exc:  # this instance at least; the rest on re-auth
        logger.warning("member_removed of %s from %s not announced: %r", user_id, team_id, exc)
        app[HUB].member_removed(team_id, user_id)
        app[QUOTAS].forget_plans(user_id)


async def member_changed(app: web.Application, team_id: str, user_id: str) -> None:
    """After the commit: every instance forgets the user's cached role in the team."""
    try:
        await announce(app, {"type": "member_changed", "team_id": team_id, "user_id": user_id})
    except BUS_FAILED as exc:  # this instance at least; the rest when their entry expires
        logger.warning("member_changed of %s in %s not announced: %r", user_id, team_id, exc)
        app[HUB].member_changed(team_id, user_id)


async def user_changed(app: web.Application, user_id: str) -> None:
    """After the commit (a new name): every instance's websocket token check reads the user
    again."""
    try:
        await announce(app, {"type": "user_changed", "user_id": user_id})
    except BUS_FAILED as exc:  # this instance at least; the rest when their entry expires
        logger.warning("user_changed for %s not announced: %r", user_id, exc)
        app[TOKENS].verified.forget_user(user_id)


async def room_changed(app: web.Application, room_id: str) -> None:
    """After the commit: every instance's live actor of the room reloads its settings."""
    try:
        await announce(app, {"type": "room_changed", "room_id": room_id})
    except BUS_FAILED as exc:  # this instance at least; the rest on their tick
        logger.warning("room_changed for %s not announced: %r", room_id, exc)
        app[HUB].room_changed(room_id)


def handler(app: web.Application) -> Any:
    """The bus handler for the control topic (runs on the bus reader: must not block)."""

    def on_event(bus_event: BusEvent) -> None:
        try:
            event = orjson.loads(bus_event.data)
            kind = event["type"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            logger.error("malformed control event %s", bus_event.id)
            return
        if kind == "user_revoked":
            _notify(app, Revoked(str(event["user_id"])))
        elif kind == "sign_in_revoked":
            _notify(app, Revoked(str(event["user_id"]), str(event["family_id"])))
        elif kind == "room_deleted":
            app[HUB].room_deleted(str(event["room_id"]))
        elif kind == "member_removed":
            app[HUB].member_removed(str(event["team_id"]), str(event["user_id"]))
            app[QUOTAS].forget_plans(str(event["user_id"]))
        elif kind == "member_changed":
            app[HUB].member_changed(str(event["team_id"]), str(event["user_id"]))
        elif kind == "user_changed":
            app[TOKENS].verified.forget_user(str(event["user_id"]))
        elif kind == "room_changed":
            app[HUB].room_changed(str(event["room_id"]))
        elif kind == "plan_changed":
            logger.info("control: plan of team=%s changed", event.get("team_id"))
            app[QUOTAS].forget_plans()

    return on_event


def _notify(app: web.Application, revoked: Revoked) -> None:
    """Every listener of this instance: the token check's cache forgets now, before the
    next event is read; the callbacks (the hub closes the matching sockets) run on a task."""
    app[REVOCATIONS].heard(revoked)
    task = asyncio.ensure_future(app[REVOCATIONS].run_callbacks(revoked))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def subscribe(app: web.Application) -> Any:
    """Listen to the control topic and route revocations through it."""

    async def publish_revocation(revoked: Revoked) -> None:
        if revoked.family_id is None:
            await announce(app, {"type": "user_revoked", "user_id": revoked.user_id})
        else:
            event = {"user_id": revoked.user_id, "family_id": revoked.family_id}
            await announce(app, {"type": "sign_in_revoked", **event})

    app[REVOCATIONS].route_through(publish_revocation)
    return await app[BUS].subscribe(TOPIC, handler(app))
