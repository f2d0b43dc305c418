"""The bus and the key-value store on a real 3-master Redis Cluster, as on a single Redis."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster as ClusterClient

from storage.bus import BusEvent, RedisStreamBus, shard_of
from storage.kv import RedisKeyValue
from storage.redis import RedisClient, connect, ping
from tests.services import RedisCluster

SHARDS = 16


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    server = RedisCluster()
    server.start()
    yield server
    server.destroy()


async def _on_each_node(cluster: RedisCluster, *command: str) -> list[object]:
    answers = []
    for url in cluster.urls:
        node = Redis.from_url(url)
        try:
            answers.append(await node.execute_command(*command))
        finally:
            await node.aclose()
    return answers


@pytest.fixture
async def client(cluster: RedisCluster) -> AsyncIterator[RedisClient]:
    """A Roomcast cluster client on an emptied cluster."""
    await _on_each_node(cluster, "FLUSHALL")
    await _on_each_node(cluster, "CONFIG", "RESETSTAT")
    redis = connect(cluster.url, cluster=True)
    yield redis
    await redis.aclose()


async def _collect(bus: RedisStreamBus, topic: str) -> list[BusEvent]:
    received: list[BusEvent] = []
    await bus.subscribe(topic, received.append)
    return received


async def _until(condition, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_cluster_url_gives_a_cluster_client_whose_ping_reaches_every_master(
    client: RedisClient, cluster: RedisCluster
) -> None:
    assert isinstance(client, ClusterClient)
    await ping(client)
    assert len(client.get_primaries()) == 3
    pings = await _on_each_node(cluster, "INFO", "commandstats")
    assert all("cmdstat_ping" in answer for answer in pings)  # type: ignore[operator]


async def test_events_published_by_one_instance_reach_another_in_order_on_every_node(
    client: RedisClient, cluster: RedisCluster
) -> None:
    other = connect(cluster.url, cluster=True)
    one = RedisStreamBus(client, shards=SHARDS, block_ms=1000)
    two = RedisStreamBus(other, shards=SHARDS, block_ms=1000)
    try:
        topics = [f"room:{i}" for i in range(12)]
        inboxes = {topic: await _collect(two, topic) for topic in topics}
        assert isinstance(client, ClusterClient)
        await client.initialize()
        nodes = {client.get_node_from_key(one.stream_key(t)).name for t in topics}
        assert len(nodes) == 3, "the topics' shards should spread over every master"
        for i, topic in itertools.product(range(20), topics):
            await one.publish(topic, f"{topic}/{i}".encode())
        await _until(lambda: all(len(inbox) == 20 for inbox in inboxes.values()))
        for topic, inbox in inboxes.items():
            assert [e.data for e in inbox] == [f"{topic}/{i}".encode() for i in range(20)]
            assert [e.topic for e in inbox] == [topic] * 20
    finally:
        await one.close()
        await two.close()
        await other.aclose()


async def test_new_interest_wakes_a_blocked_reader_at_once(client: RedisClient) -> None:
    bus = RedisStreamBus(client, shards=SHARDS, block_ms=4000)
    first = "room:first"
    second = next(
        f"room:{i}"
        for i in itertools.count()
        if shard_of(f"room:{i}", SHARDS) == shard_of(first, SHARDS)
    )
    try:
        await _collect(bus, first)
        await asyncio.sleep(0.3)  # the shard's reader is now blocked in XREAD for up to 4 s
        later = await _collect(bus, second)
        await bus.publish(second, b"noticed")
        await _until(lambda: len(later) == 1, timeout=1.5)
        assert later[0].data == b"noticed"
    finally:
        await bus.close()


async def test_bus_reads_go_to_the_owning_node_without_asking_for_their_keys(
    client: RedisClient, cluster: RedisCluster
) -> None:
    # redis-py would send COMMAND GETKEYS before each XREAD; the bus routes by hash tag.
    bus = RedisStreamBus(client, shards=SHARDS, block_ms=200)
    try:
        inbox = await _collect(bus, "room:direct")
        for i in range(5):
            await bus.publish("room:direct", str(i).encode())
        await _until(lambda: len(inbox) == 5)
        await asyncio.sleep(0.5)  # a few more empty reads
    finally:
        await bus.close()
    stats = await _on_each_node(cluster, "INFO", "commandstats")
    assert sum("cmdstat_xread" in s for s in stats) == 1  # type: ignore[operator]
    assert not any("getkeys" in s for s in stats)  # type: ignore[operator]


async def test_key_value_operations_work_on_keys_of_any_slot(client: RedisClient) -> None:
    kv = RedisKeyValue(client)
    keys = [f"k{i}" for i in range(10)]  # spread over the masters
    for key in keys:
        await kv.set(key, key.encode())
    assert [await kv.get(key) for key in keys] == [key.encode() for key in keys]
    await kv.delete(*keys)  # one call, keys on several nodes
    assert [await kv.get(key) for key in keys] == [None] * 10

    await kv.set("short", b"v", ttl=30)
    assert 29 < (await kv.ttl("short") or 0) <= 30
    assert await kv.ttl("forever") is None
    assert await kv.set_if_absent("once", b"1", ttl=10) is True
    assert await kv.set_if_absent("once", b"2", ttl=10) is False
    assert await kv.get("once") == b"1"


async def test_incr_counts_atomically_and_sets_the_expiry_only_on_creation(
    client: RedisClient,
) -> None:
    kv = RedisKeyValue(client)
    counts = await asyncio.gather(*(kv.incr("hits", ttl=60) for _ in range(20)))
    assert sorted(counts) == list(range(1, 21))
    assert 59 < (await kv.ttl("hits") or 0) <= 60
    await kv.set("hits", b"5", ttl=5)
    assert await kv.incr("hits", ttl=60) == 6
    assert (await kv.ttl("hits") or 0) <= 5  # an existing key keeps its expiry
    assert await kv.incr("plain") == 1
    assert await kv.ttl("plain") is None


async def test_a_batch_is_pipelined_to_its_streams_node_and_arrives_in_order(
    client: RedisClient,
) -> None:
    bus = RedisStreamBus(client, shards=SHARDS, block_ms=200)
    try:
        topics = [f"room:batch{i}" for i in range(6)]
        inboxes = {topic: await _collect(bus, topic) for topic in topics}
        for topic in topics:
            await bus.publish_many(topic, [f"{topic}/{i}".encode() for i in range(10)])
        await _until(lambda: all(len(inbox) == 10 for inbox in inboxes.values()))
        for topic, inbox in inboxes.items():
            assert [e.data for e in inbox] == [f"{topic}/{i}".encode() for i in range(10)]
    finally:
        await bus.close()
