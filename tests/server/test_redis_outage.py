"""A Redis that is exhausted, down or just restarted is `unavailable`, never a 500.

Each test runs an app on a redis-server of its own, which it stops and restarts for real on
the same port; the database is the suite's PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from tests.accounts import Account, signup
from tests.conftest import AppFactory
from tests.server.ws.helpers import closed_with, connect, receive
from tests.services import RedisServer

ME = "/api/v1/me"


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server for this test alone, free to stop and start again on its port."""
    server = RedisServer()
    server.start()
    yield server
    server.destroy()


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
    ws = await connect(client, account)
    own_redis.stop()

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
