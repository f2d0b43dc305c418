"""Hostile strings on the websocket: refused one by one, never at anyone else's expense.

NUL, unpaired surrogates, invalid UTF-8, overlong and wrongly typed values, in every
field of every frame type, over real websockets on PostgreSQL (which refuses NUL).
"""

from __future__ import annotations

import asyncio
import json
import uuid
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


# The hostile-input matrix. `R` stands for the room every connection joined, `U` for a
# well-formed room id that is nobody's. Each row is a frame and its documented answer:
# ("error", code, the field the message names) or ("reply", type) when the frame is
# served and its `id` is the thing ignored. The connection stays open after every row.
NUL, LONE, R, U = "a\x00b", "cut \ud83d", "<room>", "<unknown room>"
BAD_STRINGS = {"NUL": NUL, "lone surrogate": LONE, "empty": "", "number": 5, "list": ["x"]}


def rows_for(frame: dict[str, Any], field: str, limit: int) -> list[tuple[str, dict, tuple]]:
    """A frame with each bad value in `field`, and that field one character too long."""
    rows = [
        (f"{frame['type']} {field} {name}", {**frame, field: value}, ("error", "invalid", field))
        for name, value in {**BAD_STRINGS, "overlong": "x" * (limit + 1)}.items()
    ]
    rows.append(
        (
            f"{frame['type']} {field} missing",
            frame_without(frame, field),
            ("error", "invalid", field),
        )
    )
    return rows


def frame_without(frame: dict[str, Any], field: str) -> dict[str, Any]:
    return {name: value for name, value in frame.items() if name != field}


SEND = {"type": "send", "room": R, "body": "hostile"}
MATRIX: list[tuple[str, dict[str, Any], tuple]] = [
    *rows_for({"type": "auth", "token": "t"}, "token", 4096),
    *rows_for({"type": "join", "room": R}, "room", 64),
    *rows_for({"type": "leave", "room": R}, "room", 64),
    *rows_for(SEND, "room", 64),
    *rows_for(SEND, "body", 4000),
    *[
        row
        for row in rows_for({**SEND, "client_id": "c"}, "client_id", 64)
        if "missing" not in row[0]
    ],
    *rows_for({"type": "typing", "room": R}, "room", 64),
    *rows_for({"type": "cancel", "room": R, "gen": "g"}, "room", 64),
    *rows_for({"type": "cancel", "room": R, "gen": "g"}, "gen", 64),
    (
        "client_id null is none",
        {**SEND, "client_id": None, "body": ""},
        ("error", "invalid", "body"),
    ),
    (
        "join since negative",
        {"type": "join", "room": R, "since": -1},
        ("error", "invalid", "since"),
    ),
    ("join since string", {"type": "join", "room": R, "since": "3"}, ("error", "invalid", "since")),
    ("join since 2^63", {"type": "join", "room": R, "since": 2**63}, ("error", "invalid", "since")),
    ("join since float", {"type": "join", "room": R, "since": 1.5}, ("error", "invalid", "since")),
    ("join since bool", {"type": "join", "room": R, "since": True}, ("error", "invalid", "since")),
    ("send ai string", {**SEND, "ai": "yes"}, ("error", "invalid", "ai")),
    ("send ai number", {**SEND, "ai": 1}, ("error", "invalid", "ai")),
    ("type NUL", {"type": "se\x00nd", "room": R, "body": "x"}, ("error", "invalid", "type")),
    ("type lone surrogate", {"type": LONE, "room": R}, ("error", "invalid", "type")),
    ("type number", {"type": 5}, ("error", "invalid", "type")),
    ("type null", {"type": None}, ("error", "invalid", "type")),
    ("join malformed room", {"type": "join", "room": "r" * 64}, ("error", "not_found", None)),
    ("join unknown room", {"type": "join", "room": U}, ("error", "not_found", None)),
    ("send malformed room", {**SEND, "room": "../rooms"}, ("error", "not_found", None)),
    ("send unknown room", {**SEND, "room": U}, ("error", "forbidden", None)),
    ("typing malformed room", {"type": "typing", "room": "R"}, ("error", "not_found", None)),
    (
        "cancel malformed room",
        {"type": "cancel", "room": "R", "gen": "g"},
        ("error", "not_found", None),
    ),
    ("cancel unknown gen", {"type": "cancel", "room": R, "gen": "g"}, ("error", "not_found", None)),
    ("leave malformed room", {"type": "leave", "room": "R"}, ("reply", "left")),
    ("ping id NUL", {"type": "ping", "id": NUL}, ("reply", "pong")),
    ("ping id lone surrogate", {"type": "ping", "id": LONE}, ("reply", "pong")),
    ("ping id overlong", {"type": "ping", "id": "i" * 65}, ("reply", "pong")),
    ("ping id float", {"type": "ping", "id": 1.5}, ("reply", "pong")),
    ("ping id object", {"type": "ping", "id": {"a": NUL}}, ("reply", "pong")),
    ("ping unknown field", {"type": "ping", "extra": NUL}, ("reply", "pong")),
]

# Frames that break the protocol: each closes its connection with the documented code.
CLOSING: list[tuple[str, bytes, aiohttp.WSMsgType, int]] = [
    ("not JSON", b'{"type": "ping"', aiohttp.WSMsgType.TEXT, 4400),
    ("an array", b'["ping"]', aiohttp.WSMsgType.TEXT, 4400),
    ("no type", b'{"room": "a\\u0000b"}', aiohttp.WSMsgType.TEXT, 4400),
    ("NaN", b'{"type": "ping", "id": NaN}', aiohttp.WSMsgType.TEXT, 4400),
    ("invalid UTF-8", b'{"type": "send", "body": "\xff"}', aiohttp.WSMsgType.TEXT, 1007),
    (
        "a UTF-8 surrogate",
        b'{"type": "send", "body": "\xed\xa0\x80"}',
        aiohttp.WSMsgType.TEXT,
        1007,
    ),
    ("binary", b'{"type": "ping"}', aiohttp.WSMsgType.BINARY, 1003),
    (
        "over 64 KiB",
        b'{"type": "ping", "pad": "' + b"\x00" * 65536 + b'"}',
        aiohttp.WSMsgType.TEXT,
        1009,
    ),
]


def concrete(value: Any, room: str, unknown: str) -> Any:
    if isinstance(value, dict):
        return {name: concrete(item, room, unknown) for name, item in value.items()}
    return {R: room, U: unknown}.get(value, value) if isinstance(value, str) else value


async def answer_to(ws: aiohttp.ClientWebSocketResponse, rid: int | None, kind: str) -> dict:
    """The reply to request `rid` (or, for a frame whose id is ignored, the next `kind`
    frame without `re`), skipping the room's events meanwhile."""
    while True:
        frame = await receive(ws, timeout=30)  # generous: the 2 cores are shared
        if rid is not None and frame.get("re") == rid:
            return frame
        if rid is None and frame["type"] == kind and "re" not in frame:
            return frame


async def innocent(client: Any, account: Any, room_id: str, n: int) -> list[tuple[str, int]]:
    """Send `n` messages one after the other, each once its ack came; (client_id, seq)s."""
    ws = await connect(client, account)
    await join(ws, room_id)
    acked = []
    for i in range(n):
        client_id = f"{account.id[:8]}-{i}"
        await ws.send_json(
            {"type": "send", "room": room_id, "body": f"hi {i}", "client_id": client_id, "id": i}
        )
        reply = await answer_to(ws, i, "ack")
        assert reply["type"] == "ack", reply
        acked.append((client_id, reply["seq"]))
    await ws.close()
    return acked


async def test_hostile_frames_get_their_documented_answers_while_ten_others_are_all_stored(
    client, database
):
    setup = await shared_room(client, database, 11)
    hostile_account, *others = setup.accounts
    innocents = [asyncio.ensure_future(innocent(client, a, setup.room_id, 20)) for a in others]
    hostile = await connect(client, hostile_account)
    await join(hostile, setup.room_id)
    unknown = str(uuid.uuid4())
    for n, (label, template, expected) in enumerate(MATRIX):
        frame = concrete(template, setup.room_id, unknown)
        rid = None if "id" in frame else n
        await hostile.send_str(json.dumps(frame if rid is None else {**frame, "id": rid}))
        reply = await answer_to(hostile, rid, expected[1])
        if expected[0] == "reply":
            assert reply["type"] == expected[1], label
            continue
        assert (reply["type"], reply["code"]) == ("error", expected[1]), (label, reply)
        if expected[2] is not None:
            assert reply["message"].startswith(f"{expected[2]}: "), (label, reply)
    for label, data, kind, code in CLOSING:
        ws = await connect(client, hostile_account)
        await ws.send_frame(data, kind)
        assert await closed_with(ws) == code, label

    acked = [pair for task in innocents for pair in await task]
    await hostile.send_json(
        {"type": "send", "room": setup.room_id, "body": "still here", "id": "last"}
    )
    last = await answer_to(hostile, "last", "ack")  # type: ignore[arg-type]
    assert last["type"] == "ack" and last["seq"] == 201
    rows = await stored(database, setup.room_id)
    assert [seq for seq, _, _ in rows] == list(range(1, 202)), "gap-free, nothing hostile stored"
    assert sorted((client_id, seq) for seq, client_id, _ in rows[:-1]) == sorted(acked)
    assert len({client_id for client_id, _ in acked}) == 200, "each stored exactly once"
    assert session_restarts(client) == 0
    await hostile.close()
