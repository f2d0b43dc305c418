"""The benchmark's baseline: a minimal aiohttp + orjson broadcast server.

In-memory rooms, no authentication, no storage, no actors; the same frame shapes as
Roomcast (docs/protocol.md, WebSocket) so the same load client drives both: `ready` on
connect, `join` -> `joined`, `send` -> `ack` plus a `message` event with a per-room
`seq` encoded once and written to every member in turn. It is what "raw aiohttp" can do
on this machine, the yardstick for Roomcast's fan-out.

    python -m loadtests.baseline_server --port 8090
"""

from __future__ import annotations

import argparse
import itertools
import resource
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import uvloop
from aiohttp import WSMsgType, web

MAX_FRAME = 64 * 1024


@dataclass(slots=True)
class Room:
    """The members' sockets and the last `seq` handed out."""

    seq: int = 0
    members: dict[web.WebSocketResponse, dict[str, str]] = field(default_factory=dict)


ROOMS: web.AppKey[dict[str, Room]] = web.AppKey("rooms", dict)


def _reply(payload: dict[str, Any], re: Any) -> bytes:
    if re is not None:
        payload["re"] = re
    return orjson.dumps(payload)


async def _broadcast(room: Room, data: bytes) -> None:
    for member in list(room.members):
        if not member.closed:
            await member.send_frame(data, WSMsgType.TEXT)


async def _send(ws: web.WebSocketResponse, room_id: str, room: Room, frame: dict[str, Any]) -> None:
    room.seq += 1
    event = {
        "type": "message",
        "room": room_id,
        "seq": room.seq,
        "id": str(uuid.uuid4()),
        "client_id": frame.get("client_id"),
        "author": {**room.members[ws], "kind": "user"},
        "body": frame["body"],
        "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    ack = {"type": "ack", "room": room_id, "seq": room.seq, "client_id": frame.get("client_id")}
    await ws.send_frame(_reply(ack, frame.get("id")), WSMsgType.TEXT)
    await _broadcast(room, orjson.dumps(event))


async def _handle(
    ws: web.WebSocketResponse,
    rooms: dict[str, Room],
    user: dict[str, str],
    joined: set[str],
    frame: dict[str, Any],
) -> None:
    kind, room_id, re = frame.get("type"), frame.get("room"), frame.get("id")
    if kind == "send" and room_id in joined:
        await _send(ws, room_id, rooms[room_id], frame)
    elif kind == "join" and isinstance(room_id, str):
        room = rooms.setdefault(room_id, Room())
        room.members[ws] = user
        joined.add(room_id)
        members = list({u["id"]: u for u in room.members.values()}.values())
        joined_frame = {"type": "joined", "room": room_id, "seq": room.seq, "members": members}
        await ws.send_frame(_reply(joined_frame, re), WSMsgType.TEXT)
    elif kind == "leave" and room_id in joined:
        rooms[room_id].members.pop(ws, None)
        joined.discard(room_id)
        await ws.send_frame(_reply({"type": "left", "room": room_id}, re), WSMsgType.TEXT)
    elif kind == "ping":
        await ws.send_frame(_reply({"type": "pong"}, re), WSMsgType.TEXT)
    else:
        error = {"type": "error", "code": "invalid", "message": "unsupported frame"}
        await ws.send_frame(_reply(error, re), WSMsgType.TEXT)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """`GET /ws`: no auth; every connection is a fresh anonymous user."""
    rooms = request.app[ROOMS]
    ws = web.WebSocketResponse(max_msg_size=MAX_FRAME, compress=False)
    await ws.prepare(request)
    user = {"id": str(uuid.uuid4()), "name": f"user-{next(_names)}"}
    ready = {"type": "ready", "user": user, "session": uuid.uuid4().hex, "heartbeat": 25}
    await ws.send_frame(orjson.dumps(ready), WSMsgType.TEXT)
    joined: set[str] = set()
    try:
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                await _handle(ws, rooms, user, joined, orjson.loads(message.data))
    finally:
        for room_id in joined:
            rooms[room_id].members.pop(ws, None)
    return ws


async def health(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


_names = itertools.count(1)


def create_app() -> web.Application:
    app = web.Application()
    app[ROOMS] = {}
    app.router.add_get("/ws", websocket)
    app.router.add_get("/health", health)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    web.run_app(
        create_app(),
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
