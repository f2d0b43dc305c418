"""What an idle joined connection holds: no HTTP parser or request queue, no writer lock or task,
no per-instance dicts; and it still talks both ways, and closes cleanly."""

from __future__ import annotations

from server.state import HUB
from server.ws import HEARTBEAT_KEY, Connection
from tests.server.ws.helpers import connect, join, receive, shared_room


async def test_an_idle_joined_connection_holds_only_what_it_needs_and_still_talks(
    make_client, database
):
    client = await make_client()
    setup = await shared_room(client, database, 2)
    alice, bob = setup.accounts
    ws = await connect(client, alice)
    await join(ws, setup.room_id)
    (connection,) = client.app[HEARTBEAT_KEY].connections
    assert isinstance(connection, Connection)
    (session,) = client.app[HUB].sessions_of(alice.id)

    protocol = connection.ws._req.protocol  # type: ignore[union-attr]
    assert protocol._parser is None  # the HTTP parser is let go after the upgrade
    assert protocol._messages == ()  # and the queue of parsed requests
    writer = connection.ws._writer
    assert writer is not None
    assert writer._send_lock is None  # an uncompressed server writer never locks a send
    assert writer._background_tasks is None
    assert connection._writer is None  # frames go straight into the socket
    assert not hasattr(connection, "__dict__")
    assert not hasattr(session, "__dict__")
    assert not hasattr(session.outbound, "__dict__")
    assert len(session.outbound) == 0

    other = await connect(client, bob)
    await join(other, setup.room_id)
    await other.send_json({"type": "send", "room": setup.room_id, "body": "still there?"})
    assert (await receive(ws, "message"))["body"] == "still there?"
    await ws.send_json({"type": "ping", "id": "p"})
    assert await receive(ws, "pong") == {"type": "pong", "re": "p"}
    await other.close()
    await ws.close()
    assert ws.close_code == 1000  # the server answered the close: a clean handshake
