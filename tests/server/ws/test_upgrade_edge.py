"""A websocket upgrade gets the middleware chain's work done with no frame of ours left around
its handler: the error shape, the request id, the trusted proxy's client and the HTTP metrics,
as every other request."""

from __future__ import annotations

import asyncio
import logging
from ipaddress import ip_network
from types import CoroutineType
from typing import Any

import aiohttp

from server.logs import RequestIdFilter
from server.ws import HEARTBEAT_KEY
from tests.server.ws.helpers import connect, join, receive, shared_room

UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


def awaited_names(task: asyncio.Task[Any]) -> list[str]:
    """The functions suspended in `task`, outermost first; aiohttp's start with `aiohttp:`."""
    names, coro = [], task.get_coro()
    while isinstance(coro, CoroutineType):
        ours = "site-packages" not in coro.cr_code.co_filename
        names.append(("" if ours else "aiohttp:") + coro.cr_code.co_qualname)
        coro = coro.cr_await
    return names


async def test_an_idle_websocket_waits_in_no_middleware_frame_of_ours_and_logs_with_its_request_id(
    make_client, database, caplog
):
    caplog.set_level(logging.INFO, logger="server.ws")
    caplog.handler.addFilter(RequestIdFilter())
    client = await make_client()
    setup = await shared_room(client, database, 1)
    headers = {**setup.accounts[0].headers, "X-Request-ID": "socket-7"}
    ws = await client.ws_connect("/ws", headers=headers)
    assert (await receive(ws, "ready"))["user"]["id"] == setup.accounts[0].id
    await join(ws, setup.room_id)
    (task,) = [task for task in asyncio.all_tasks() if "Connection.serve" in awaited_names(task)]
    chain = awaited_names(task)
    around = chain[chain.index("aiohttp:Application._handle") + 1 : chain.index("websocket")]
    # aiohttp's own wrapper (it sets match_info.current_app), none of ours, not one per middleware
    assert around == ["aiohttp:_fix_request_current_app.<locals>.impl"]

    await ws.send_bytes(b"no binary frames")
    while (await ws.receive(timeout=5)).type is not aiohttp.WSMsgType.CLOSE:
        pass  # frames of the room sent before the close
    (closing,) = [record for record in caplog.records if "ws closing" in record.getMessage()]
    assert closing.request_id == "socket-7"  # type: ignore[attr-defined]


async def test_a_refused_upgrade_answers_in_the_error_shape_with_its_request_id(client, database):
    account = (await shared_room(client, database, 1)).accounts[0]
    bad_origin = {**UPGRADE, **account.headers, "Origin": "https://evil.example"}
    refused = await client.get("/ws", headers={**bad_origin, "X-Request-ID": "up-1"})
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "forbidden"
    assert refused.headers["X-Request-ID"] == "up-1"

    bad_token = {**UPGRADE, "Authorization": "Bearer not-a-token"}
    unauthorized = await client.get("/ws", headers=bad_token)
    assert unauthorized.status == 401
    assert (await unauthorized.json())["error"]["code"] == "unauthorized"
    assert len(unauthorized.headers["X-Request-ID"]) == 32

    nowhere = await client.get("/no/such/socket", headers=UPGRADE)
    assert nowhere.status == 404
    assert (await nowhere.json())["error"]["code"] == "not_found"


async def test_a_websocket_is_counted_when_its_upgrade_is_answered_not_as_it_closes(
    client, database
):
    account = (await shared_room(client, database, 1)).accounts[0]
    refused = await client.get("/ws", headers={**UPGRADE, "Authorization": "Bearer nope"})
    assert refused.status == 401
    ws = await connect(client, account)
    counted = await (await client.get("/metrics")).text()
    await ws.close()
    closed = await (await client.get("/metrics")).text()
    for text in (counted, closed):
        lines = {line for line in text.splitlines() if 'route="/ws"' in line}
        assert 'roomcast_http_requests_total{method="GET",route="/ws",status="101"} 1.0' in lines
        assert 'roomcast_http_requests_total{method="GET",route="/ws",status="401"} 1.0' in lines
        assert 'roomcast_http_request_duration_seconds_count{route="/ws"} 2.0' in lines
        assert not [line for line in lines if 'status="5' in line]


async def test_behind_a_trusted_proxy_the_websocket_is_the_forwarded_clients(make_client, database):
    client = await make_client(trusted_proxies=(ip_network("127.0.0.1/32"),))
    account = (await shared_room(client, database, 1)).accounts[0]
    headers = {**account.headers, "X-Forwarded-For": "203.0.113.7"}
    ws = await client.ws_connect("/ws", headers=headers)
    assert (await receive(ws))["type"] == "ready"
    (connection,) = client.app[HEARTBEAT_KEY].connections
    assert connection.ws._req.remote == "203.0.113.7"
    await ws.close()
