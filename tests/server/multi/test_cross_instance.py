"""Two real instances over one PostgreSQL and one Redis behave as one server."""

from __future__ import annotations

import asyncio
from typing import Any

from storage.db import Database
from tests.instances import launched
from tests.server.ws.helpers import closed_with, connect, join, receive, shared_room
from tests.services import RedisServer

FAST = {"PRESENCE_TTL": 2, "TICK_INTERVAL": 0.5, "AI_INTERRUPT_AFTER": 2}


async def messages_until(ws, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """`count` distinct `message` events (dropping duplicates by seq), in arrival order."""
    seen: dict[int, dict[str, Any]] = {}
    order: list[int] = []
    async with asyncio.timeout(timeout):
        while len(seen) < count:
            frame = await receive(ws, "message", timeout=timeout)
            if frame["seq"] not in seen:
                seen[frame["seq"]] = frame
                order.append(frame["seq"])
    return [seen[seq] for seq in order]


async def test_concurrent_senders_on_both_instances_see_one_order(instances, database: Database):
    a, b = await instances(2)
    setup = await shared_room(a.client(), database, 4)
    sockets = [
        await connect((a if i % 2 == 0 else b).client(), account)
        for i, account in enumerate(setup.accounts)
    ]
    for ws in sockets:
        await join(ws, setup.room_id)
    per_sender = 30

    async def send_all(ws, tag: int) -> None:
        for n in range(per_sender):
            await ws.send_json({"type": "send", "room": setup.room_id, "body": f"{tag}-{n}"})

    await asyncio.gather(*(send_all(ws, i) for i, ws in enumerate(sockets)))
    total = per_sender * len(sockets)
    orders = [await messages_until(ws, total) for ws in sockets]
    for received in orders:
        assert [m["seq"] for m in received] == list(range(1, total + 1))
    bodies = [[m["body"] for m in received] for received in orders]
    assert all(b == bodies[0] for b in bodies), "every client sees the same order"
    assert sorted(bodies[0]) == sorted(f"{t}-{n}" for t in range(4) for n in range(per_sender))


async def test_a_member_on_b_watches_an_answer_generated_on_a(instances, database: Database):
    a, b = await instances(2)
    setup = await shared_room(a.client(), database, 2, assistant="mention")
    on_a = await connect(a.client(), setup.accounts[0])
    on_b = await connect(b.client(), setup.accounts[1])
    for ws in (on_a, on_b):
        await join(ws, setup.room_id)
    await on_a.send_json({"type": "send", "room": setup.room_id, "body": "hi?", "ai": True})
    start = await receive(on_b, "ai.start")
    text, deltas = "", 0
    while True:
        frame = await receive(on_b)
        if frame["type"] == "ai.delta":
            assert frame["i"] == deltas
            text, deltas = text + frame["text"], deltas + 1
        elif frame["type"] == "message" and frame["author"]["kind"] == "assistant":
            stored = frame
        elif frame["type"] == "ai.end":
            break
    assert frame["gen"] == start["gen"] and frame["finish"] == "stop"
    assert deltas > 3 and stored["body"] == text


async def test_logout_all_on_a_closes_the_users_sockets_on_b(instances, database: Database):
    a, b = await instances(2)
    setup = await shared_room(a.client(), database, 1)
    on_b = await connect(b.client(), setup.accounts[0])
    answer = await a.client().post("/api/v1/auth/logout-all", headers=setup.accounts[0].headers)
    assert answer.status == 204
    assert await closed_with(on_b, timeout=3) == 4401, b.log_tail()


async def test_deleting_a_room_on_a_ends_its_subscriptions_on_b(instances, database: Database):
    a, b = await instances(2)
    setup = await shared_room(a.client(), database, 1)
    on_b = await connect(b.client(), setup.accounts[0])
    await join(on_b, setup.room_id)
    gone = await a.client().delete(
        f"/api/v1/rooms/{setup.room_id}", headers=setup.accounts[0].headers
    )
    assert gone.status == 204
    left = await receive(on_b, "left")
    assert left["room"] == setup.room_id
    await on_b.send_json({"type": "send", "room": setup.room_id, "body": "anyone?", "id": 1})
    assert (await receive(on_b, "error"))["code"] in ("not_found", "forbidden")


async def test_kill_9_of_a_loses_nothing_and_interrupts_its_generation(
    instances, database: Database
):
    a = (await instances(1, **FAST, AI_OFFLINE_DELAY=0.3))[0]  # A answers slowly
    b = (await instances(1, **FAST))[1]
    setup = await shared_room(a.client(), database, 2, assistant="mention")
    alice = await connect(a.client(), setup.accounts[0])
    bob = await connect(b.client(), setup.accounts[1])
    await join(alice, setup.room_id)
    await join(bob, setup.room_id)
    for n in range(10):
        await alice.send_json({"type": "send", "room": setup.room_id, "body": f"m{n}"})
    acked = [(await receive(alice, "ack"))["seq"] for _ in range(10)]
    await alice.send_json({"type": "send", "room": setup.room_id, "body": "ai?", "ai": True})
    start = await receive(bob, "ai.start")
    await receive(bob, "ai.delta")
    await a.kill()

    error = await receive(bob, "ai.error", timeout=10)
    assert error["gen"] == start["gen"] and error["code"] == "interrupted"

    again = await connect(b.client(), setup.accounts[0])
    joined = await join(again, setup.room_id, since=0)
    replayed = await messages_until(again, joined["seq"])
    assert [m["seq"] for m in replayed] == list(range(1, joined["seq"] + 1))
    assert set(acked) <= {m["seq"] for m in replayed}

    await asyncio.sleep(3)  # past the presence TTL: A's entries are gone
    later = await connect(b.client(), setup.accounts[1])
    members = (await join(later, setup.room_id))["members"]
    assert {m["id"] for m in members} == {setup.accounts[0].id, setup.accounts[1].id}
    await again.close()
    await asyncio.sleep(3)
    members = (await join(later, setup.room_id))["members"]
    assert {m["id"] for m in members} == {setup.accounts[1].id}


async def test_redis_restart_loses_no_acked_message_and_both_recover(
    database: Database, database_url: str, tmp_path
):
    redis = RedisServer()
    redis.start()
    try:
        async with launched(database_url, redis.url, tmp_path / "instances") as instances:
            a, b = await instances(2)
            setup = await shared_room(a.client(), database, 2)
            alice = await connect(a.client(), setup.accounts[0])
            await join(alice, setup.room_id)
            acked: dict[str, int] = {}  # client_id -> seq
            refused: set[str] = set()

            async def send(n: int) -> None:
                frame = {"type": "send", "room": setup.room_id, "body": f"m{n}", "id": n}
                await alice.send_json({**frame, "client_id": f"c{n}"})

            for n in range(5):
                await send(n)
            redis.stop()
            await asyncio.sleep(1.5)
            for n in range(5, 10):
                await send(n)
            redis.start()
            for instance in (a, b):
                await instance.wait_ready(timeout=30)
            for n in range(10, 15):
                await send(n)
            async with asyncio.timeout(30):
                while len(acked) + len(refused) < 15:
                    frame = await receive(alice, timeout=30)
                    if frame["type"] == "ack":
                        acked[frame["client_id"]] = frame["seq"]
                    elif frame["type"] == "error":
                        assert frame["code"] == "unavailable"
                        refused.add(f"c{frame['re']}")
            bob = await connect(b.client(), setup.accounts[1])
            joined = await join(bob, setup.room_id, since=0)
            stored = await messages_until(bob, joined["seq"])
            # The answers told the truth: acked is stored (with its seq), refused is not.
            assert {m["client_id"]: m["seq"] for m in stored} == acked
    finally:
        redis.destroy()


async def test_sigterm_tells_clients_4503_and_exits_cleanly(instances, database: Database):
    a, b = await instances(2)
    setup = await shared_room(a.client(), database, 1)
    ws = await connect(a.client(), setup.accounts[0])
    code = asyncio.ensure_future(closed_with(ws, timeout=15))
    assert await a.terminate() == 0
    assert await code == 4503
    assert await b.ready()


async def test_the_same_holds_on_a_three_master_redis_cluster(
    database: Database, database_url: str, redis_cluster, tmp_path
):
    async with launched(database_url, redis_cluster.url, tmp_path / "instances") as instances:
        a, b = await instances(2, redis_cluster=redis_cluster)
        setup = await shared_room(a.client(), database, 2)
        on_a = await connect(a.client(), setup.accounts[0])
        on_b = await connect(b.client(), setup.accounts[1])
        for ws in (on_a, on_b):
            await join(ws, setup.room_id)
        for n in range(20):
            await (on_a if n % 2 else on_b).send_json(
                {"type": "send", "room": setup.room_id, "body": f"m{n}"}
            )
        for ws in (on_a, on_b):
            assert [m["seq"] for m in await messages_until(ws, 20)] == list(range(1, 21))
