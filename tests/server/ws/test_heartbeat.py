"""The heartbeat: quiet peers are pinged, silent ones dropped, and client pings answered."""

from __future__ import annotations

import asyncio

import aiohttp

from server.state import HUB
from tests.server.ws.helpers import RawSocket, connect, receive, shared_room


async def test_ready_announces_the_configured_heartbeat(make_client, database):
    client = await make_client(ws_heartbeat=7.5)
    setup = await shared_room(client, database, 1)
    ws = await client.ws_connect("/ws", headers=setup.accounts[0].headers)
    assert (await receive(ws, "ready"))["heartbeat"] == 7.5
    await ws.close()


async def test_a_quiet_client_is_pinged_and_stays_connected_while_it_answers(make_client, database):
    client = await make_client(ws_heartbeat=0.2)
    setup = await shared_room(client, database, 1)
    ws = await client.ws_connect("/ws", headers=setup.accounts[0].headers, autoping=False)
    await receive(ws, "ready")
    pings = 0
    loop = asyncio.get_running_loop()
    until = loop.time() + 2.0  # ten heartbeat intervals
    while (left := until - loop.time()) > 0:
        try:
            message = await ws.receive(timeout=left)
        except TimeoutError:
            break
        assert message.type is aiohttp.WSMsgType.PING, message
        assert message.data == b""  # the server's own empty ping
        pings += 1
        await ws.pong(message.data)
    assert pings >= 2
    assert not ws.closed
    await ws.send_json({"type": "ping", "id": "still-here"})
    assert await receive(ws) == {"type": "pong", "re": "still-here"}
    await ws.close()


async def test_a_peer_that_leaves_pings_unanswered_is_dropped_with_its_session(
    make_client, database
):
    client = await make_client(ws_heartbeat=0.2)
    setup = await shared_room(client, database, 1)
    account = setup.accounts[0]
    silent = await asyncio.to_thread(RawSocket, client.port, account.access_token)
    hub = client.app[HUB]
    assert len(hub.sessions_of(account.id)) == 1

    def read_until_dropped() -> tuple[bytes, str]:
        """Everything the server sent, and how the connection ended for us."""
        silent.sock.settimeout(10)
        received = silent.buffer
        try:
            while chunk := silent.sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            return received, "reset"
        except TimeoutError:
            return received, "still open after 10 s"
        return received, "closed"

    received, ending = await asyncio.to_thread(read_until_dropped)
    assert ending in ("closed", "reset")  # the server dropped the silent peer
    assert b"\x89\x00" in received  # after pinging it
    async with asyncio.timeout(5):
        while hub.sessions_of(account.id):
            await asyncio.sleep(0.02)
    assert hub.sessions_of(account.id) == []  # and its session went with it
    silent.close()


async def test_a_client_ping_is_answered_with_a_pong_carrying_its_data(client, database):
    setup = await shared_room(client, database, 1)
    ws = await connect(client, setup.accounts[0], autoping=False)
    await ws.ping(b"are you there")
    message = await ws.receive(timeout=5)
    assert (message.type, message.data) == (aiohttp.WSMsgType.PONG, b"are you there")
    await ws.close()
