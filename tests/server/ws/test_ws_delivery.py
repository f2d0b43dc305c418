"""Order, idempotency, replay, crashes, slow consumers and revocation on the websocket."""

from __future__ import annotations

import asyncio

from actors.room_messages import Post
from server.realtime import FAULTS
from server.state import HUB
from tests.server.ws.helpers import (
    RawSocket,
    closed_with,
    connect,
    join,
    receive,
    shared_room,
)


async def test_seq_is_gap_free_and_increasing_under_concurrent_senders(client, database):
    setup = await shared_room(client, database, 4)
    sockets = [await connect(client, account) for account in setup.accounts]
    for ws in sockets:
        await join(ws, setup.room_id)
    per_sender = 25
    for ws in sockets:
        for n in range(per_sender):
            await ws.send_json({"type": "send", "room": setup.room_id, "body": f"m{n}"})
    total = per_sender * len(sockets)
    for ws in sockets:
        seqs = []
        while len(seqs) < total:
            seqs.append((await receive(ws, "message"))["seq"])
        assert seqs == list(range(1, total + 1))
    for ws in sockets:
        await ws.close()


async def test_resend_with_the_same_client_id_is_stored_once(client, database):
    setup = await shared_room(client, database, 1)
    ws = await connect(client, setup.accounts[0])
    await join(ws, setup.room_id)
    for attempt in range(3):
        await ws.send_json(
            {"type": "send", "room": setup.room_id, "body": "once", "client_id": "c", "id": attempt}
        )
        ack = await receive(ws, "ack")
        assert ack["seq"] == 1 and ack["re"] == attempt
    history = await client.get(
        f"/api/v1/rooms/{setup.room_id}/messages", headers=setup.accounts[0].headers
    )
    assert [m["body"] for m in (await history.json())["items"]] == ["once"]
    await ws.close()


async def test_join_with_since_replays_exactly_the_missed_messages(client, database):
    setup = await shared_room(client, database, 2)
    alice = await connect(client, setup.accounts[0])
    await join(alice, setup.room_id)
    for n in range(1, 6):
        await alice.send_json({"type": "send", "room": setup.room_id, "body": f"m{n}"})
        await receive(alice, "ack")
    bob = await connect(client, setup.accounts[1])
    joined = await join(bob, setup.room_id, since=2)
    assert joined["seq"] == 5
    replayed = [await receive(bob, "message") for _ in range(3)]
    assert [m["seq"] for m in replayed] == [3, 4, 5]
    assert [m["body"] for m in replayed] == ["m3", "m4", "m5"]
    await alice.send_json({"type": "send", "room": setup.room_id, "body": "live"})
    live = await receive(bob, "message")
    assert live["seq"] == 6 and live["body"] == "live"
    await alice.close()
    await bob.close()


async def test_crashed_room_restarts_with_members_connected_and_order_kept(
    make_client, settings, database
):
    from server.app import create_app

    app = create_app(settings)

    def crash_on_boom(_room_id, message):
        if isinstance(message, Post) and message.message.body == "boom":
            raise RuntimeError("injected fault")

    app[FAULTS] = crash_on_boom
    client = await make_client(app)
    setup = await shared_room(client, database, 2)
    alice = await connect(client, setup.accounts[0])
    bob = await connect(client, setup.accounts[1])
    await join(alice, setup.room_id)
    await join(bob, setup.room_id)
    await alice.send_json({"type": "send", "room": setup.room_id, "body": "before"})
    await alice.send_json({"type": "send", "room": setup.room_id, "body": "boom", "id": "b"})
    for n in range(3):
        await alice.send_json({"type": "send", "room": setup.room_id, "body": f"after{n}"})
    bodies = [(await receive(bob, "message"))["body"] for _ in range(4)]
    assert bodies == ["before", "after0", "after1", "after2"]
    room = app[HUB].rooms.get(setup.room_id)
    assert room is not None and room.restarts == 1
    assert not alice.closed and not bob.closed
    await alice.close()
    await bob.close()


async def test_a_non_reading_client_is_closed_with_4509_and_others_keep_receiving(
    make_client, database
):
    client = await make_client(
        ws_outbound_soft_limit=4096,
        ws_outbound_hard_limit=16384,
        ws_frames_per_second=1e6,
        ws_burst=1e6,
    )
    setup = await shared_room(client, database, 3)
    sender = await connect(client, setup.accounts[0])
    reader = await connect(client, setup.accounts[1])
    for ws in (sender, reader):
        await join(ws, setup.room_id)
    # Blocking socket calls run in a thread: the server shares this event loop.
    sleeper = await asyncio.to_thread(RawSocket, client.port, setup.accounts[2].access_token)
    await asyncio.to_thread(sleeper.send_json, {"type": "join", "room": setup.room_id})
    await receive(reader, "presence")
    body = "x" * 3900
    count = 1500  # several MB: more than the kernel's socket buffers take in
    received = 0

    async def read_all() -> None:
        nonlocal received
        while received < count:
            if (await receive(reader, "message"))["body"] == body:
                received += 1

    reading = asyncio.create_task(read_all())
    for _ in range(count):
        await sender.send_json({"type": "send", "room": setup.room_id, "body": body})
    await asyncio.wait_for(reading, 30)
    assert received == count, "the reading member got everything despite the sleeper"
    assert await asyncio.to_thread(sleeper.read_until_close) == 4509
    sleeper.close()
    await sender.close()
    await reader.close()


async def test_logout_all_closes_the_users_sockets_with_4401(client, database):
    setup = await shared_room(client, database, 2)
    alice_ws = [await connect(client, setup.accounts[0]) for _ in range(2)]
    bob_ws = await connect(client, setup.accounts[1])
    response = await client.post("/api/v1/auth/logout-all", headers=setup.accounts[0].headers)
    assert response.status == 204
    for ws in alice_ws:
        assert await closed_with(ws, timeout=1.5) == 4401
    await bob_ws.send_json({"type": "ping"})
    assert (await receive(bob_ws))["type"] == "pong"
    await bob_ws.close()


async def test_admin_sees_the_actor_tree_and_others_are_forbidden(client, database):
    setup = await shared_room(client, database, 1)
    ws = await connect(client, setup.accounts[0])
    await join(ws, setup.room_id)
    forbidden = await client.get("/api/v1/admin/actors", headers=setup.accounts[0].headers)
    assert forbidden.status == 403
    async with database.sessions.begin() as session:
        from sqlalchemy import update

        from storage.models import User

        await session.execute(
            update(User).where(User.id == setup.accounts[0].id).values(role="admin")
        )
    tree = await client.get("/api/v1/admin/actors", headers=setup.accounts[0].headers)
    assert tree.status == 200
    names = {node["name"] for node in (await tree.json())["items"]}
    assert names == {"rooms", "sessions"}
    rooms = next(n for n in (await tree.json())["items"] if n["name"] == "rooms")
    assert rooms["children"][0]["name"] == f"room:{setup.room_id}"
    assert {"mailbox_depth", "restarts", "age_seconds"} <= set(rooms["children"][0])
    await ws.close()


async def test_logout_closes_the_sockets_of_that_sign_in_with_4401_and_no_others(client, database):
    setup = await shared_room(client, database, 1)
    account = setup.accounts[0]
    login = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    other_access = (await login.json())["access_token"]
    signed_out = await connect(client, account)
    other = await client.ws_connect("/ws", headers={"Authorization": f"Bearer {other_access}"})
    await receive(other, "ready")
    response = await client.post("/api/v1/auth/logout", headers=account.headers)
    assert response.status == 204
    assert await closed_with(signed_out, timeout=1.5) == 4401
    await other.send_json({"type": "ping"})
    assert (await receive(other))["type"] == "pong"
    await other.close()
