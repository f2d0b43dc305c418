"""Hostile strings on the websocket: refused one by one, never at anyone else's expense.

NUL, unpaired surrogates, invalid UTF-8, overlong and wrongly typed values, in every
field of every frame type, over real websockets on PostgreSQL (which refuses NUL).
"""

from __future__ import annotations

from typing import Any

import aiohttp
from sqlalchemy import select

from server.state import HUB
from storage.models import Message
from tests.server.ws.helpers import closed_with, connect, join, receive, shared_room


def session_restarts(client: Any) -> int:
    """How often any session actor was restarted after a crash."""
    sessions = client.app[HUB].sessions.snapshot()
    return sum(child.restarts for child in sessions.children)


async def stored(database: Any, room_id: str) -> list[tuple[int, str | None, str]]:
    async with database.sessions() as session:
        rows = await session.execute(
            select(Message.seq, Message.client_id, Message.body)
            .where(Message.room_id == room_id)
            .order_by(Message.seq)
        )
    return [tuple(row) for row in rows]


async def still_serves(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_json({"type": "ping", "id": "alive"})
    assert await receive(ws, "pong") == {"type": "pong", "re": "alive"}


async def test_a_nul_in_a_client_id_is_invalid_and_the_next_send_is_stored(client, database):
    setup = await shared_room(client, database, 1)
    ws = await connect(client, setup.accounts[0])
    await join(ws, setup.room_id)
    bad = {"type": "send", "room": setup.room_id, "body": "hi", "client_id": "a\x00b", "id": 1}
    await ws.send_json(bad)
    error = await receive(ws, "error")
    assert error == {
        "type": "error",
        "code": "invalid",
        "message": "client_id: must not contain NUL characters",
        "re": 1,
    }
    await ws.send_json({"type": "send", "room": setup.room_id, "body": "ok", "id": 2})
    assert (await receive(ws, "ack"))["seq"] == 1
    assert await stored(database, setup.room_id) == [(1, None, "ok")]
    await ws.close()


async def test_a_join_with_a_nul_room_id_is_invalid_and_the_session_is_not_restarted(
    client, database
):
    setup = await shared_room(client, database, 1)
    ws = await connect(client, setup.accounts[0])
    await ws.send_json({"type": "join", "room": "a\x00b", "id": 1})
    error = await receive(ws, "error")
    assert (error["code"], error["message"], error["re"]) == (
        "invalid",
        "room: must not contain NUL characters",
        1,
    )
    await still_serves(ws)
    assert (await join(ws, setup.room_id))["seq"] == 0
    assert session_restarts(client) == 0
    await ws.close()


async def test_a_room_id_not_shaped_like_our_ids_is_not_found_for_every_frame(client, database):
    setup = await shared_room(client, database, 1)
    ws = await connect(client, setup.accounts[0])
    malformed = ["x" * 64, "no-such-room", setup.room_id.upper(), f" {setup.room_id[1:]}"]
    for n, room in enumerate(malformed):
        for frame in (
            {"type": "join", "room": room},
            {"type": "send", "room": room, "body": "hi"},
            {"type": "typing", "room": room},
            {"type": "cancel", "room": room, "gen": "g"},
        ):
            await ws.send_json({**frame, "id": n})
            error = await receive(ws, "error")
            assert (error["code"], error["message"], error["re"]) == (
                "not_found",
                "no such room",
                n,
            )
    await still_serves(ws)
    assert session_restarts(client) == 0
    await ws.close()


async def test_an_escaped_lone_surrogate_is_invalid_and_the_connection_stays(client, database):
    setup = await shared_room(client, database, 1)
    ws = await connect(client, setup.accounts[0])
    await join(ws, setup.room_id)
    room = setup.room_id
    await ws.send_str(f'{{"type": "send", "room": "{room}", "body": "cut \\ud83d", "id": "s"}}')
    error = await receive(ws, "error")
    assert error == {
        "type": "error",
        "code": "invalid",
        "message": "body: must be valid Unicode (an unpaired surrogate)",
        "re": "s",
    }
    await ws.send_str(f'{{"type": "send", "room": "{room}", "body": "whole \\ud83d\\ude00"}}')
    assert (await receive(ws, "ack"))["seq"] == 1
    assert await stored(database, room) == [(1, None, "whole 😀")]
    await ws.close()


async def test_a_text_frame_of_invalid_utf8_closes_with_1007(client, database):
    setup = await shared_room(client, database, 1)
    ws = await connect(client, setup.accounts[0])
    await ws.send_frame(b'{"type": "ping", "id": "\xff"}', aiohttp.WSMsgType.TEXT)
    assert await closed_with(ws) == 1007
    assert session_restarts(client) == 0
