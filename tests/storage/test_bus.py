"""The bus hands published events to local subscribers, in-process and on Redis Streams."""

from __future__ import annotations

import asyncio

import pytest

from storage.bus import BusEvent, MemoryBus, RedisStreamBus


@pytest.fixture(params=["memory", "redis"])
async def bus(request, redis):
    if request.param == "memory":
        instance = MemoryBus()
    else:
        instance = RedisStreamBus(redis, shards=4, block_ms=1000)
    yield instance
    await instance.close()


async def collect(bus, topic: str) -> tuple[list[BusEvent], asyncio.Event, object]:
    received: list[BusEvent] = []
    arrived = asyncio.Event()

    def handler(event: BusEvent) -> None:
        received.append(event)
        arrived.set()

    subscription = await bus.subscribe(topic, handler)
    return received, arrived, subscription


async def wait_for_count(events: list[BusEvent], count: int) -> None:
    async with asyncio.timeout(5):
        while len(events) < count:
            await asyncio.sleep(0.01)


async def test_subscriber_receives_events_in_publish_order(bus) -> None:
    received, _, _ = await collect(bus, "room:a")
    for i in range(50):
        await bus.publish("room:a", f"m{i}".encode())
    await wait_for_count(received, 50)
    assert [e.data for e in received] == [f"m{i}".encode() for i in range(50)]
    assert all(e.topic == "room:a" for e in received)


async def test_a_batch_published_at_once_arrives_in_order_between_single_events(bus) -> None:
    received, _, _ = await collect(bus, "room:a")
    await bus.publish("room:a", b"before")
    await bus.publish_many("room:a", [f"m{i}".encode() for i in range(20)])
    await bus.publish_many("room:a", [])
    await bus.publish_many("room:a", [b"alone"])
    await bus.publish("room:a", b"after")
    await wait_for_count(received, 23)
    await asyncio.sleep(0.05)  # nothing else comes
    expected = [b"before", *[f"m{i}".encode() for i in range(20)], b"alone", b"after"]
    assert [e.data for e in received] == expected
    assert len({e.id for e in received}) == 23


async def test_topics_are_independent_and_closed_subscriptions_stop(bus) -> None:
    a, _, sub_a = await collect(bus, "room:a")
    b, _, _ = await collect(bus, "room:b")
    await bus.publish("room:a", b"for a")
    await bus.publish("room:b", b"for b")
    await wait_for_count(a, 1)
    await wait_for_count(b, 1)
    sub_a.close()
    await bus.publish("room:a", b"after close")
    await bus.publish("room:b", b"second for b")
    await wait_for_count(b, 2)
    assert [e.data for e in a] == [b"for a"]
    assert [e.data for e in b] == [b"for b", b"second for b"]


async def test_a_failing_handler_does_not_starve_the_others(bus) -> None:
    def broken(_event: BusEvent) -> None:
        raise RuntimeError("subscriber bug")

    await bus.subscribe("room:x", broken)
    received, _, _ = await collect(bus, "room:x")
    await bus.publish("room:x", b"still delivered")
    await wait_for_count(received, 1)
    assert received[0].data == b"still delivered"


async def test_redis_bus_delivers_across_two_instances(redis) -> None:
    one = RedisStreamBus(redis, shards=4, block_ms=1000)
    two = RedisStreamBus(redis, shards=4, block_ms=1000)
    try:
        received, _, _ = await collect(two, "room:shared")
        await one.publish("room:shared", b"hello from one")
        await wait_for_count(received, 1)
        assert received[0].data == b"hello from one"
        assert one.stream_key("room:shared").startswith("{rc:")
    finally:
        await one.close()
        await two.close()


async def test_redis_bus_new_interest_wakes_a_blocked_reader(redis) -> None:
    bus = RedisStreamBus(redis, shards=1, block_ms=30_000)
    try:
        first, _, _ = await collect(bus, "room:1")
        await asyncio.sleep(0.1)  # the shard's reader is now blocked on XREAD for 30 s
        second, _, _ = await collect(bus, "room:2")
        await bus.publish("room:2", b"prompt")
        await wait_for_count(second, 1)  # well before the 30 s block would end
        assert second[0].data == b"prompt"
        assert first == []
    finally:
        await bus.close()
