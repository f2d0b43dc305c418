"""A message committed while Redis is down reaches every instance's members once it is back.

The two instances run over the suite's PostgreSQL and a redis-server of the test's own,
stopped and started again for real on the same port (empty: it persists nothing).
"""

from __future__ import annotations

from typing import Any

import aiohttp

from storage.db import Database
from tests.instances import launched
from tests.server.ws.helpers import connect, join, receive, shared_room
from tests.services import RedisServer


async def _reply(ws: aiohttp.ClientWebSocketResponse, re: int) -> dict[str, Any]:
    """The direct reply (`ack` or `error`) to the request with id `re`."""
    while True:
        frame = await receive(ws, timeout=30)
        if frame.get("re") == re:
            return frame


async def _send(ws: aiohttp.ClientWebSocketResponse, room_id: str, n: int) -> dict[str, Any]:
    await ws.send_json(
        {"type": "send", "room": room_id, "body": f"m{n}", "client_id": f"c{n}", "id": n}
    )
    return await _reply(ws, n)


async def _alice_on_a_bob_on_b(a: Any, b: Any, database: Database) -> tuple[Any, Any, Any]:
    """A room of two members, Alice connected to instance A and Bob to B, both joined."""
    setup = await shared_room(a.client(), database, 2)
    alice = await connect(a.client(), setup.accounts[0])
    bob = await connect(b.client(), setup.accounts[1])
    for ws in (alice, bob):
        await join(ws, setup.room_id)
    return setup, alice, bob


async def test_a_message_committed_while_redis_is_down_reaches_the_other_instance_in_order(
    database: Database, database_url: str, own_redis: RedisServer, tmp_path
) -> None:
    async with launched(database_url, own_redis.url, tmp_path / "instances") as instances:
        a, b = await instances(2)
        setup, alice, bob = await _alice_on_a_bob_on_b(a, b, database)

        own_redis.stop()  # A has not noticed yet: it takes the send, commits it, acks it
        assert (await _send(alice, setup.room_id, 1))["seq"] == 1
        own_redis.start()
        await a.wait_ready(timeout=30)
        assert (await _send(alice, setup.room_id, 2))["seq"] == 2

        got = [await receive(bob, "message", timeout=30) for _ in range(2)]
        assert [(m["seq"], m["body"]) for m in got] == [(1, "m1"), (2, "m2")]


async def test_a_message_whose_instance_died_before_the_bus_returned_still_reaches_the_other(
    database: Database, database_url: str, own_redis: RedisServer, tmp_path
) -> None:
    async with launched(database_url, own_redis.url, tmp_path / "instances") as instances:
        a, b = await instances(2)
        setup, alice, bob = await _alice_on_a_bob_on_b(a, b, database)

        own_redis.stop()
        assert (await _send(alice, setup.room_id, 1))["seq"] == 1
        await a.kill()  # its relay dies with it: nobody will ever publish seq 1
        own_redis.start()

        message = await receive(bob, "message", timeout=30)
        assert (message["seq"], message["body"]) == (1, "m1")
