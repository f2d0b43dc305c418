"""The shared presence in Redis: a room's users on every instance, each entry expiring."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from storage.presence import RedisPresence


def presence(redis: Redis, instance: str, ttl: float = 15.0) -> RedisPresence:
    return RedisPresence(redis, instance, key_of=lambda room_id: f"presence:{room_id}", ttl=ttl)


async def test_each_instance_writes_its_users_and_everyone_reads_them_all(redis: Redis) -> None:
    a, b = presence(redis, "a"), presence(redis, "b")
    await a.refresh("r1", [("u1", "Ada"), ("u2", "Bob")])
    await b.refresh("r1", [("u2", "Bob"), ("u3", "Cy")])
    await b.refresh("r2", [("u9", "Other room")])

    assert await a.members("r1") == {"u1": "Ada", "u2": "Bob", "u3": "Cy"}
    assert 0 < await redis.ttl("presence:r1") <= 60

    await b.remove("r1", "u2", "u3")  # several users in one call
    assert await a.members("r1") == {"u1": "Ada", "u2": "Bob"}  # Bob is still on A
    await a.remove("r1")  # nobody: nothing to do
    assert await b.members("r1") == {"u1": "Ada", "u2": "Bob"}


async def test_an_entry_not_refreshed_in_time_is_no_longer_read_and_is_pruned(
    redis: Redis,
) -> None:
    live = presence(redis, "live")
    await live.refresh("r1", [("u2", "Bob")])
    # What an instance that died a while ago left: an entry whose expiry has passed.
    await redis.hset("presence:r1", "u1:gone", f"{int(time.time()) - 1} Ada")

    assert await live.members("r1") == {"u2": "Bob"}
    assert await redis.hkeys("presence:r1") == [b"u2:live"]
