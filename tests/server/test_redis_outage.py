"""A Redis that is exhausted, down or just restarted is `unavailable`, never a 500, and
the answer to a `send` tells the truth: committed is acked, refused is not stored.

Each test runs an app on a redis-server of its own, which it stops and restarts for real on
the same port; the database is the suite's PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from server.state import PROBE
from storage import messages
from storage.db import Database
from tests.accounts import Account, signup
from tests.conftest import AppFactory
from tests.server.ws.helpers import closed_with, connect, join, receive, shared_room
from tests.services import RedisServer

ME = "/api/v1/me"


@pytest.fixture
async def burst_session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session without a connection limit, so a burst reaches the server at once."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield session


async def _rest(session: aiohttp.ClientSession, client: TestClient, account: Account) -> str:
    async with session.get(client.make_url(ME), headers=account.headers) as response:
        if response.status == 503:
            assert response.headers["Retry-After"].isdigit()
            assert (await response.json())["error"]["code"] == "unavailable"
        return f"rest {response.status}"


async def _upgrade_with_header(
    session: aiohttp.ClientSession, client: TestClient, account: Account
) -> str:
    try:
        ws = await session.ws_connect(client.make_url("/ws"), headers=account.headers)
    except aiohttp.WSServerHandshakeError as exc:
        return f"upgrade {exc.status}"
    return await _first_frame(ws)


async def _upgrade_then_auth(
    session: aiohttp.ClientSession, client: TestClient, account: Account
) -> str:
    ws = await session.ws_connect(client.make_url("/ws"))
    await ws.send_json({"type": "auth", "token": account.access_token, "id": "a"})
    return await _first_frame(ws)


async def _first_frame(ws: aiohttp.ClientWebSocketResponse) -> str:
    """`ready`, or `error <code>` and the close code that followed, or the close code."""
    try:
        message = await ws.receive(timeout=30)
        if message.type is not aiohttp.WSMsgType.TEXT:
            return f"closed {ws.close_code}"
        frame: dict[str, Any] = message.json()
        if frame["type"] == "ready":
            return "ready"
        assert frame["type"] == "error", frame
        return f"error {frame['code']} closed {await closed_with(ws, timeout=30)}"
    finally:
        await ws.close()


async def test_a_burst_against_a_small_pool_gets_answers_or_a_clean_503_never_500_or_1002(
    make_client: AppFactory,
    own_redis: RedisServer,
    burst_session: aiohttp.ClientSession,
) -> None:
    client = await make_client(
        redis_url=own_redis.url, redis_max_connections=2, redis_pool_timeout=0.05
    )
    account = await signup(client)
    attempts = [
        *(_rest(burst_session, client, account) for _ in range(100)),
        *(_upgrade_with_header(burst_session, client, account) for _ in range(100)),
        *(_upgrade_then_auth(burst_session, client, account) for _ in range(100)),
    ]
    outcomes = Counter(await asyncio.gather(*attempts))

    allowed = {
        "rest 200",
        "rest 503",
        "ready",
        "upgrade 503",
        "error unavailable closed 1011",
    }
    assert set(outcomes) <= allowed, outcomes
    assert sum(outcomes.values()) == 300


async def test_while_redis_is_down_rest_answers_503_unavailable_with_retry_after(
    make_client: AppFactory, own_redis: RedisServer
) -> None:
    client = await make_client(redis_url=own_redis.url)
    account = await signup(client)
    own_redis.stop()

    response = await client.get(ME, headers=account.headers)

    assert response.status == 503
    assert response.headers["Retry-After"].isdigit()
    assert (await response.json())["error"]["code"] == "unavailable"


async def test_while_redis_is_down_a_websocket_upgrade_is_refused_with_503(
    make_client: AppFactory, own_redis: RedisServer
) -> None:
    client = await make_client(redis_url=own_redis.url)
    account = await signup(client)
    own_redis.stop()

    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws", headers=account.headers)

    assert refused.value.status == 503


async def test_while_redis_is_down_an_auth_frame_gets_unavailable_and_a_1011_close(
    make_client: AppFactory, own_redis: RedisServer
) -> None:
    client = await make_client(redis_url=own_redis.url)
    account = await signup(client)
    own_redis.stop()

    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "auth", "token": account.access_token, "id": 7})

    error = await receive(ws, timeout=30)
    assert error == {
        "type": "error",
        "code": "unavailable",
        "message": "authentication is unavailable; reconnect shortly",
        "re": 7,
    }
    assert await closed_with(ws, timeout=30) == 1011


async def test_while_redis_is_down_a_reauth_gets_unavailable_and_the_connection_goes_on(
    make_client: AppFactory, own_redis: RedisServer
) -> None:
    client = await make_client(redis_url=own_redis.url)
    account = await signup(client)
    ws = await connect(client, account)  # the check kept the user and the sign-in
    own_redis.stop()
    # Once the bus is known deaf, what the check kept is dropped: it asks Redis again.
    async with asyncio.timeout(30):
        while client.app[PROBE].healthy():
            await asyncio.sleep(0.1)

    await ws.send_json({"type": "auth", "token": account.access_token, "id": "again"})
    error = await receive(ws, "error", timeout=30)
    assert (error["code"], error["re"]) == ("unavailable", "again")

    await ws.send_json({"type": "ping", "id": "still"})
    assert (await receive(ws, "pong", timeout=30))["re"] == "still"


async def test_the_first_requests_after_a_redis_restart_succeed_on_fresh_connections(
    make_client: AppFactory,
    own_redis: RedisServer,
    burst_session: aiohttp.ClientSession,
) -> None:
    client = await make_client(redis_url=own_redis.url, redis_max_connections=8)
    account = await signup(client)
    warm = [_rest(burst_session, client, account) for _ in range(20)]
    assert set(await asyncio.gather(*warm)) == {"rest 200"}  # the pool holds connections now

    own_redis.stop()
    own_redis.start()  # empty, on the same port: every pooled connection is dead
    first = [
        *(_rest(burst_session, client, account) for _ in range(10)),
        *(_upgrade_with_header(burst_session, client, account) for _ in range(10)),
    ]

    assert Counter(await asyncio.gather(*first)) == {"rest 200": 10, "ready": 10}


# Sends: the answer tells the truth. Committed is acked; refused is not stored.


async def _reply(ws: aiohttp.ClientWebSocketResponse, re: int) -> dict[str, Any]:
    """The direct reply (`ack` or `error`) to the request with id `re`."""
    while True:
        frame = await receive(ws, timeout=30)
        if frame.get("re") == re:
            return frame


async def _stored(database: Database, room_id: str) -> list[tuple[int, str | None]]:
    async with database.reads() as session:
        page = await messages.page(session, room_id, limit=100)
    return [(message.seq, message.client_id) for message in page.items]


async def _until_bus_is_down(client: TestClient) -> None:
    """Until /ready says the instance no longer hears its own bus probe."""
    async with asyncio.timeout(30):
        while True:
            response = await client.get("/ready")
            if response.status == 503:
                unreachable = (await response.json())["error"]["details"]["unreachable"]
                if "bus" in unreachable:
                    return
            await asyncio.sleep(0.2)


async def _until_ready(client: TestClient) -> None:
    async with asyncio.timeout(30):
        while (await client.get("/ready")).status != 200:
            await asyncio.sleep(0.2)


async def test_a_send_committed_while_redis_is_down_is_acked_and_reaches_the_room_here(
    make_client: AppFactory, own_redis: RedisServer, database: Database
) -> None:
    client = await make_client(redis_url=own_redis.url)
    setup = await shared_room(client, database, 2)
    alice, bob = [await connect(client, account) for account in setup.accounts]
    for ws in (alice, bob):
        await join(ws, setup.room_id)
    own_redis.stop()  # the instance has not noticed yet: the send is taken and committed

    await alice.send_json(
        {"type": "send", "room": setup.room_id, "body": "hi", "client_id": "c1", "id": 1}
    )

    assert await _reply(alice, 1) == {
        "type": "ack",
        "room": setup.room_id,
        "seq": 1,
        "client_id": "c1",
        "re": 1,
    }
    assert (await receive(bob, "message", timeout=30))["seq"] == 1
    assert await _stored(database, setup.room_id) == [(1, "c1")]


async def test_a_send_refused_while_the_bus_is_down_is_not_stored_and_its_retry_is_acked(
    make_client: AppFactory, own_redis: RedisServer, database: Database
) -> None:
    client = await make_client(redis_url=own_redis.url)
    setup = await shared_room(client, database, 1)
    alice = await connect(client, setup.accounts[0])
    await join(alice, setup.room_id)
    own_redis.stop()
    await _until_bus_is_down(client)
    send = {"type": "send", "room": setup.room_id, "body": "hi", "client_id": "c1"}

    await alice.send_json({**send, "id": 1})
    refused = await _reply(alice, 1)
    assert (refused["type"], refused["code"]) == ("error", "unavailable")
    assert await _stored(database, setup.room_id) == []

    own_redis.start()
    await _until_ready(client)
    await alice.send_json({**send, "id": 2})
    assert (await _reply(alice, 2))["seq"] == 1
    assert await _stored(database, setup.room_id) == [(1, "c1")]


async def test_a_room_list_cached_before_redis_fails_is_fresh_once_it_returns(
    make_client: AppFactory, database: Database
) -> None:
    # Redis keeps its data across the restart (an fsynced append-only file), so the list
    # cached before the failure is still there when it comes back.
    durable = RedisServer("--appendonly", "yes", "--appendfsync", "always")
    durable.start()
    try:
        client = await make_client(redis_url=durable.url)
        setup = await shared_room(client, database, 1)
        owner = setup.accounts[0]
        rooms_url = f"/api/v1/teams/{setup.team_id}/rooms"

        async def last_seq() -> int:
            response = await client.get(rooms_url, headers=owner.headers)
            assert response.status == 200, await response.text()
            return int((await response.json())["items"][0]["last_seq"])

        assert await last_seq() == 0  # now cached
        alice = await connect(client, owner)
        await join(alice, setup.room_id)
        durable.stop()
        await alice.send_json({"type": "send", "room": setup.room_id, "body": "hi", "id": 1})
        assert (await _reply(alice, 1))["seq"] == 1  # its invalidation of the list failed
        durable.start()
        await _until_ready(client)

        assert await last_seq() == 1
    finally:
        durable.destroy()
