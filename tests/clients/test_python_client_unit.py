"""The Python client against a scripted in-process server: the protocol's rules, one by one."""

from __future__ import annotations

import asyncio
import base64
import json
import random

import pytest
from aiohttp import web
from roomcast_client import (
    AiDelta,
    AnswerRefused,
    AuthenticationError,
    Backoff,
    Client,
    Left,
    Message,
    ProtocolViolation,
    RequestError,
    RoomLeftError,
    SendError,
    State,
    token_expiry,
)
from roomcast_client.events import parse_event

from tests.clients.fake_server import FakeConnection, fake_server

FAST = Backoff(initial=0.05, maximum=0.2, slow_initial=0.5)


def message(room: str, seq: int, body: str = "hi", client_id: str | None = None) -> dict:
    return {
        "type": "message",
        "room": room,
        "seq": seq,
        "id": f"m{seq}",
        "client_id": client_id,
        "author": {"id": "u2", "name": "Bob", "kind": "user"},
        "body": body,
        "ts": "2026-11-21T10:00:00Z",
    }


def jwt(claims: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part(claims)}.signature"


async def joined(conn: FakeConnection, seq: int = 0) -> dict:
    """Answer the next `join` with `joined`; the join frame."""
    join = await conn.receive("join")
    await conn.send({"type": "joined", "room": join["room"], "seq": seq, "members": []})
    return join


async def next_event(events, timeout: float = 5.0):
    async with asyncio.timeout(timeout):
        return await anext(events)


def test_token_expiry_is_read_from_the_payload_without_verifying():
    assert token_expiry(jwt({"sub": "u", "exp": 1_900_000_000})) == 1_900_000_000
    assert token_expiry("not-a-jwt") is None
    assert token_expiry("a.%%%.c") is None


def test_backoff_is_jittered_exponential_capped_and_slower_after_4429():
    backoff = Backoff(initial=1.0, maximum=8.0, slow_initial=5.0)
    rng = random.Random(7)
    bounds = []
    for _ in range(6):
        before = backoff.attempts
        delay = backoff.next_delay(rng=rng)
        bound = min(8.0, 2.0**before)
        assert 0 <= delay <= bound
        bounds.append(bound)
    assert bounds == [1, 2, 4, 8, 8, 8]
    delays = [backoff.next_delay(rng=rng) for _ in range(50)]
    assert len(set(delays)) > 40, "every wait is randomized"
    backoff.reset()
    slow = Backoff(initial=1.0, maximum=30.0, slow_initial=5.0)
    assert max(slow.next_delay(slow=True, rng=random.Random(s)) for s in range(200)) > 1.0


def test_events_parse_into_frozen_dataclasses_and_unknown_types_are_ignored():
    delta = parse_event(
        {"type": "ai.delta", "room": "R", "gen": "G", "i": 3, "text": "Hi", "full": True}
    )
    assert delta == AiDelta("R", "G", 3, "Hi", full=True)
    with pytest.raises(AttributeError):
        delta.text = "x"  # type: ignore[misc]
    parsed = parse_event(message("R", 4))
    assert isinstance(parsed, Message) and parsed.seq == 4 and parsed.author.name == "Bob"
    assert parse_event({"type": "ai.beat", "room": "R"}) is None
    assert parse_event({"type": "left", "room": "R", "reason": "deleted"}) == Left("R", "deleted")


async def test_resumes_with_since_drops_duplicates_and_resends_unacked_with_the_same_client_id():
    async with fake_server() as server:
        states: list[State] = []
        client = Client(server.url, "token", backoff=FAST)
        client.on_state(lambda change: states.append(change.state))
        await client.connect()
        first = await server.next_connection()
        join_task = asyncio.create_task(client.join("R"))
        assert "since" not in await joined(first, seq=10)
        assert (await join_task).seq == 10
        events = client.events()
        await first.send(message("R", 11))
        await first.send(message("R", 11))  # a duplicate is dropped
        await first.send(message("R", 12))
        assert [(await next_event(events)).seq for _ in range(2)] == [11, 12]

        sending = asyncio.create_task(client.send("R", "hello"))
        sent = await first.receive("send")
        # An ack of seq 14 must not move the room's seq: 13 may still be on its way.
        other = asyncio.create_task(client.send("R", "other"))
        other_frame = await first.receive("send")
        await first.send({"type": "ack", "re": other_frame["id"], "room": "R", "seq": 14})
        assert await other == 14
        await first.close(1011)

        second = await server.next_connection()
        rejoin = await joined(second, seq=15)
        assert rejoin["since"] == 12
        resent = await second.receive("send")
        assert resent["client_id"] == sent["client_id"] and resent["body"] == "hello"
        for seq in (12, 13, 14, 15):  # the replay after since=12
            await second.send(message("R", seq))
        await second.send({"type": "ack", "re": resent["id"], "room": "R", "seq": 15})
        assert await sending == 15
        assert [(await next_event(events)).seq for _ in range(3)] == [13, 14, 15]
        assert client.last_seq("R") == 15
        assert states == [State.CONNECTING, State.CONNECTED, State.RECONNECTING, State.CONNECTED]
        await client.close()
        assert client.state is State.CLOSED


async def test_a_protocol_violation_close_is_raised_and_never_reconnected():
    async with fake_server() as server:
        client = Client(server.url, "token", backoff=FAST)
        await client.connect()
        conn = await server.next_connection()
        events = client.events()
        await conn.close(4400)
        with pytest.raises(ProtocolViolation) as raised:
            await next_event(events)
        assert raised.value.code == 4400
        assert client.state is State.CLOSED
        with pytest.raises(ProtocolViolation):
            await client.send("R", "x")
        await asyncio.sleep(0.3)  # several backoff periods: nothing dials again
        assert server.count == 1
        await client.close()


async def test_4401_reconnects_only_with_a_fresh_token_from_the_provider():
    async with fake_server() as server:
        tokens = iter(["t1", "t2"])

        async def provider() -> str:
            return next(tokens, "t2")  # then it has nothing fresh to give

        client = Client(server.url, provider, backoff=FAST)
        await client.connect()
        first = await server.next_connection()
        assert first.token == "t1"
        await first.close(4401)
        second = await server.next_connection()
        assert second.token == "t2"
        await second.close(4401)
        with pytest.raises(AuthenticationError):
            await client.wait_closed()
        assert server.count == 2

        static = Client(server.url, "only", backoff=FAST)
        await static.connect()
        await (await server.next_connection()).close(4401)
        with pytest.raises(AuthenticationError):
            await static.wait_closed()
        assert server.count == 3
        await client.close()
        await static.close()


async def test_send_errors_are_typed_but_quota_exceeded_waits_for_the_ack():
    async with fake_server() as server:
        client = Client(server.url, "token", backoff=FAST)
        await client.connect()
        conn = await server.next_connection()
        join_task = asyncio.create_task(client.join("R"))
        await joined(conn)
        await join_task
        quota = asyncio.create_task(client.send("R", "answer me", ai=True))
        frame = await conn.receive("send")
        assert frame["ai"] is True
        await conn.send({"type": "ack", "re": frame["id"], "room": "R", "seq": 1})
        await conn.send(
            {"type": "error", "code": "quota_exceeded", "message": "", "re": frame["id"]}
            | {"room": "R", "seq": 1}  # after the ack, as the server usually sends it
        )
        assert await quota == 1
        events = client.events()
        assert await asyncio.wait_for(anext(events), 5) == AnswerRefused(
            "R", 1, "quota_exceeded", ""
        )
        refused = asyncio.create_task(client.send("R", "x"))
        frame = await conn.receive("send")
        await conn.send(
            {
                "type": "error",
                "code": "rate_limited",
                "message": "the room is busy",
                "re": frame["id"],
            }
        )
        with pytest.raises(SendError) as raised:
            await refused
        assert raised.value.code == "rate_limited"
        assert raised.value.client_id == frame["client_id"]
        await client.close()


async def test_left_with_a_reason_forgets_the_room_across_reconnects():
    async with fake_server() as server:
        client = Client(server.url, "token", backoff=FAST)
        await client.connect()
        conn = await server.next_connection()
        joins = [asyncio.create_task(client.join(room)) for room in ("R", "S")]
        await joined(conn)
        await joined(conn)
        await asyncio.gather(*joins)
        events = client.events()
        await conn.send({"type": "left", "room": "R", "reason": "removed"})
        assert await next_event(events) == Left("R", "removed")
        assert list(client.rooms) == ["S"]
        await conn.close(4503)
        again = await server.next_connection()
        assert (await joined(again))["room"] == "S"
        await again.send({"type": "pong", "re": 999})
        with pytest.raises(asyncio.TimeoutError):
            await again.receive("join", timeout=0.3)
        await client.close()


async def test_a_busy_servers_503_is_retried_no_sooner_than_its_retry_after():
    async with fake_server() as server:
        server.refusals.append(web.Response(status=503, headers={"Retry-After": "1"}))
        client = Client(server.url, "token", backoff=FAST)  # FAST alone would wait < 0.2 s
        connecting = asyncio.create_task(client.connect())
        await server.next_connection()
        await connecting
        waited = asyncio.get_running_loop().time() - server.refused_at[0]
        assert waited >= 1.0
        assert client.state is State.CONNECTED
        await client.close()


async def join_rooms(client: Client, conn: FakeConnection, *rooms: str) -> None:
    tasks = [asyncio.create_task(client.join(room)) for room in rooms]
    for _ in rooms:
        await joined(conn)
    await asyncio.gather(*tasks)


async def test_a_leave_the_busy_room_refuses_is_asked_again_until_the_server_says_left():
    async with fake_server() as server:
        client = Client(server.url, "token", backoff=FAST)
        await client.connect()
        conn = await server.next_connection()
        await join_rooms(client, conn, "R", "S")
        events = client.events()
        leaving = asyncio.create_task(client.leave("R"))
        assert await conn.receive() == {"type": "leave", "room": "R", "id": "l:R"}
        for code in ("rate_limited", "unavailable"):
            await conn.send({"type": "error", "code": code, "message": "busy", "re": "l:R"})
            assert await conn.receive() == {"type": "leave", "room": "R", "id": "l:R"}
        assert not leaving.done(), "the server still has the room"

        # Still in the room on the server; left for the application.
        assert client.rooms == {"S": 0}
        assert client.last_seq("R") is None
        with pytest.raises(RoomLeftError):
            await client.send("R", "after leave")
        await conn.send(message("R", 1))
        await conn.send({"type": "left", "room": "R", "re": "l:R"})
        await asyncio.wait_for(leaving, 5)
        assert await next_event(events) == Left("R", None)  # the message was dropped

        await conn.close(1011)
        again = await server.next_connection()
        assert (await joined(again))["room"] == "S"
        with pytest.raises(asyncio.TimeoutError):
            await again.receive(timeout=0.3)
        await client.close()


async def test_a_leave_pending_when_the_connection_drops_is_done_and_no_reconnect_joins_the_room():
    async with fake_server() as server:
        client = Client(server.url, "token", backoff=FAST)
        await client.connect()
        conn = await server.next_connection()
        await join_rooms(client, conn, "R", "S", "T")
        leaving = asyncio.create_task(client.leave("R"))
        await conn.receive("leave")
        await conn.send({"type": "error", "code": "rate_limited", "message": "", "re": "l:R"})
        # The next dial is refused with a second to wait: the client stays disconnected.
        server.refusals.append(web.Response(status=503, headers={"Retry-After": "1"}))
        await conn.close(1011)
        await asyncio.wait_for(leaving, 5)
        await asyncio.wait_for(client.leave("T"), 1)  # no socket is in it: done at once
        assert client.rooms == {"S": 0}

        again = await server.next_connection()
        assert (await joined(again))["room"] == "S"
        with pytest.raises(asyncio.TimeoutError):
            await again.receive(timeout=0.3)  # no join of R or T, and no leave
        await client.close()


async def test_leaving_a_room_not_joined_returns_at_once_and_another_refusal_raises():
    async with fake_server() as server:
        client = Client(server.url, "token", backoff=FAST)
        await client.connect()
        conn = await server.next_connection()
        await asyncio.wait_for(client.leave("never-joined"), 1)
        joining = asyncio.create_task(client.join("R"))
        join = await conn.receive()
        assert join["type"] == "join", "nothing was sent to leave a room not joined"
        await conn.send({"type": "joined", "room": "R", "seq": 0, "members": []})
        await joining
        leaving = asyncio.create_task(client.leave("R"))
        await conn.receive("leave")
        await conn.send({"type": "error", "code": "invalid", "message": "room", "re": "l:R"})
        with pytest.raises(RequestError) as raised:
            await leaving
        assert raised.value.code == "invalid"
        assert client.rooms == {}
        await client.close()


async def test_a_join_before_the_left_reply_takes_the_room_back_and_the_leave_raises():
    async with fake_server() as server:
        client = Client(server.url, "token", backoff=FAST)
        await client.connect()
        conn = await server.next_connection()
        await join_rooms(client, conn, "R")
        events = client.events()
        await conn.send(message("R", 3))
        assert (await next_event(events)).seq == 3
        leaving = asyncio.create_task(client.leave("R"))
        await conn.receive("leave")
        rejoining = asyncio.create_task(client.join("R"))
        with pytest.raises(RequestError) as raised:
            await leaving
        assert raised.value.code == "joined"
        # The server takes the frames in order: after the leave, the join; the room stays.
        assert (await conn.receive())["since"] == 3
        await conn.send({"type": "left", "room": "R", "re": "l:R"})
        await conn.send({"type": "joined", "room": "R", "seq": 4, "members": []})
        assert (await rejoining).seq == 4
        await conn.send(message("R", 4))
        assert await next_event(events) == parse_event(message("R", 4))
        assert client.rooms == {"R": 4}
        await client.close()
