"""Real instances over one PostgreSQL and one Redis: the harness the cross-instance tests use."""

from __future__ import annotations

import asyncio

from storage.db import Database
from tests.accounts import signup
from tests.instances import InstancesFactory
from tests.server.ws.helpers import connect, join, receive, shared_room
from tests.services import RedisCluster


async def _login(client, account) -> int:
    answer = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    return answer.status


async def test_an_account_registered_on_one_instance_logs_in_on_the_other(
    instances: InstancesFactory,
) -> None:
    a, b = await instances(2)
    assert a.port != b.port and a.pid != b.pid
    assert await a.ready() and await b.ready()
    account = await signup(a.client())
    on_b = b.client()
    assert await _login(on_b, account) == 200
    teams = await on_b.get("/api/v1/teams", headers=account.headers)  # A's token, B's check
    assert teams.status == 200, await teams.text()


async def test_killing_one_instance_leaves_the_other_serving(
    instances: InstancesFactory, database: Database
) -> None:
    a, b = await instances(2)
    setup = await shared_room(a.client(), database)
    await a.kill()
    assert not a.running and not await a.ready()
    assert await b.ready()
    on_b = b.client()
    assert await _login(on_b, setup.accounts[0]) == 200
    ws = await connect(on_b, setup.accounts[1])
    joined = await join(ws, setup.room_id)
    assert joined["room"] == setup.room_id


async def test_a_killed_instance_restarts_on_its_port_and_accepts_existing_tokens(
    instances: InstancesFactory,
) -> None:
    (a,) = await instances(1)
    account = await signup(a.client())
    port, pid = a.port, a.pid
    await a.restart()
    assert (a.port, a.running) == (port, True) and a.pid != pid
    answer = await a.client().get("/api/v1/teams", headers=account.headers)
    assert answer.status == 200, await answer.text()


async def test_sigterm_stops_an_instance_with_exit_code_zero(instances: InstancesFactory) -> None:
    a, b = await instances(2)
    assert await a.terminate() == 0, a.log_tail()
    assert await b.ready()


async def test_a_message_sent_on_one_instance_reaches_a_member_on_the_other_over_a_cluster(
    instances: InstancesFactory, database: Database, redis_cluster: RedisCluster
) -> None:
    a, b = await instances(2, redis_cluster=redis_cluster)
    setup = await shared_room(a.client(), database)
    sender = await connect(a.client(), setup.accounts[0])
    watcher = await connect(b.client(), setup.accounts[1])
    await join(watcher, setup.room_id)
    await join(sender, setup.room_id)
    await sender.send_json({"type": "send", "room": setup.room_id, "body": "across"})
    seen = await receive(watcher, "message")
    assert seen["body"] == "across"
    assert (await receive(sender, "message"))["seq"] == seen["seq"]
    await asyncio.gather(sender.close(), watcher.close())
