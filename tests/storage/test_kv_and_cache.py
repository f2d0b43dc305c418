"""The key-value store and the cache behave the same in-process and on Redis."""

from __future__ import annotations

import asyncio

import pytest

from storage.cache import Cache
from storage.kv import MemoryKeyValue, RedisKeyValue


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def kv(request, redis):
    if request.param == "memory":
        return MemoryKeyValue()
    return RedisKeyValue(redis, prefix="test:")


async def test_set_get_delete_roundtrip(kv) -> None:
    assert await kv.get("a") is None
    await kv.set("a", b"1")
    assert await kv.get("a") == b"1"
    await kv.delete("a", "missing")
    assert await kv.get("a") is None


async def test_set_if_absent_only_sets_once(kv) -> None:
    assert await kv.set_if_absent("jti:1", b"x", ttl=60) is True
    assert await kv.set_if_absent("jti:1", b"y", ttl=60) is False
    assert await kv.get("jti:1") == b"x"


async def test_incr_counts_and_sets_ttl_on_creation(kv) -> None:
    assert [await kv.incr("hits", ttl=30) for _ in range(3)] == [1, 2, 3]
    remaining = await kv.ttl("hits")
    assert remaining is not None
    assert 0 < remaining <= 30
    assert await kv.ttl("never-set") is None


async def test_keys_expire(kv) -> None:
    await kv.set("short", b"v", ttl=0.05)
    await asyncio.sleep(0.2)
    assert await kv.get("short") is None


def test_memory_store_evicts_least_recently_used_past_its_bound() -> None:
    clock = FakeClock()
    store = MemoryKeyValue(max_entries=2, clock=clock)

    async def scenario() -> None:
        await store.set("a", b"1")
        await store.set("b", b"2")
        await store.get("a")
        await store.set("c", b"3")
        assert await store.get("b") is None
        assert await store.get("a") == b"1"
        await store.set("d", b"4", ttl=5)
        clock.now += 6
        assert await store.get("d") is None

    asyncio.run(scenario())


async def test_cache_roundtrips_json_and_invalidates(kv) -> None:
    cache = Cache(kv, namespace="rooms:")
    await cache.set("team-1", [{"id": "r1", "name": "lobby"}])
    assert await cache.get("team-1") == [{"id": "r1", "name": "lobby"}]
    await cache.invalidate("team-1")
    assert await cache.get("team-1") is None
