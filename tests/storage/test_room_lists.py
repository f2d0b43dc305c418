"""The cached room list: served from the cache, never stale after a change, not even by a race."""

from __future__ import annotations

import asyncio

import pytest

from storage.cache import Cache
from storage.kv import MemoryKeyValue, RedisKeyValue
from storage.room_lists import RoomListCache


@pytest.fixture(params=["memory", "redis"])
def lists(request, redis) -> RoomListCache:
    store = MemoryKeyValue() if request.param == "memory" else RedisKeyValue(redis, prefix="t:")
    return RoomListCache(Cache(store))


class Database:
    """A stand-in for the rooms table that counts its reads."""

    def __init__(self) -> None:
        self.rooms = [{"id": "r1"}]
        self.reads = 0

    async def load(self):
        self.reads += 1
        return list(self.rooms)


async def test_a_second_read_is_served_from_the_cache(lists) -> None:
    db = Database()
    assert await lists.get("t", db.load) == [{"id": "r1"}]
    assert await lists.get("t", db.load) == [{"id": "r1"}]
    assert db.reads == 1


async def test_a_read_after_invalidation_loads_again(lists) -> None:
    db = Database()
    await lists.get("t", db.load)
    db.rooms.append({"id": "r2"})
    await lists.invalidate("t")
    assert await lists.get("t", db.load) == [{"id": "r1"}, {"id": "r2"}]
    assert db.reads == 2


async def test_teams_are_cached_apart(lists) -> None:
    db = Database()
    await lists.get("t1", db.load)
    await lists.invalidate("t2")
    await lists.get("t1", db.load)
    assert db.reads == 1


async def test_a_load_that_raced_a_change_is_not_served_afterwards(lists) -> None:
    db = Database()
    loaded, release = asyncio.Event(), asyncio.Event()

    async def slow_load():
        rooms = list(db.rooms)  # read before the change commits
        loaded.set()
        await release.wait()
        return rooms

    reader = asyncio.create_task(lists.get("t", slow_load))
    await loaded.wait()
    db.rooms.append({"id": "r2"})  # the change commits, then invalidates
    await lists.invalidate("t")
    release.set()
    assert await reader == [{"id": "r1"}]  # that reader began before the change
    assert await lists.get("t", db.load) == [{"id": "r1"}, {"id": "r2"}]
