"""Who is in which room, across instances: a Redis hash per room, refreshed by heartbeat.

Each entry is `user_id:instance_id → "<expires unix seconds> <name>"`. An instance
refreshes the entries of its local members every few seconds; readers skip expired
entries, so the members of an instance that died drop out within one expiry period,
without anyone cleaning up after it (expired fields are pruned as they are seen).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Protocol

from storage.redis import RedisClient


class Presence(Protocol):
    async def refresh(self, room_id: str, members: Iterable[tuple[str, str]]) -> None:
        """Mark `(user_id, name)` pairs as present in the room via this instance."""
        ...

    async def remove(self, room_id: str, *user_ids: str) -> None:
        """Mark users as gone from the room via this instance."""
        ...

    async def members(self, room_id: str) -> dict[str, str]:
        """Present users of the room on any live instance: user id → name."""
        ...


class MemoryPresence:
    """Single-instance presence: the room actors' own member lists are the whole truth."""

    def __init__(self, ttl: float = 15.0, clock: Any = time.time) -> None:
        self._rooms: dict[str, dict[str, tuple[float, str]]] = {}
        self._ttl = ttl
        self._clock = clock

    async def refresh(self, room_id: str, members: Iterable[tuple[str, str]]) -> None:
        expires = self._clock() + self._ttl
        room = self._rooms.setdefault(room_id, {})
        for user_id, name in members:
            room[user_id] = (expires, name)

    async def remove(self, room_id: str, *user_ids: str) -> None:
        room = self._rooms.get(room_id, {})
        for user_id in user_ids:
            room.pop(user_id, None)

    async def members(self, room_id: str) -> dict[str, str]:
        now = self._clock()
        return {u: n for u, (exp, n) in self._rooms.get(room_id, {}).items() if exp > now}


class RedisPresence:
    """Presence in a Redis hash per room, in the room's shard slot like its stream."""

    def __init__(
        self, client: RedisClient, instance_id: str, *, key_of: Any, ttl: float = 15.0
    ) -> None:
        self._redis = client
        self._instance = instance_id
        self._key_of = key_of  # room id -> hash key (shares the stream's hash tag)
        self._ttl = ttl

    async def refresh(self, room_id: str, members: Iterable[tuple[str, str]]) -> None:
        expires = int(time.time() + self._ttl)
        mapping = {f"{user_id}:{self._instance}": f"{expires} {name}" for user_id, name in members}
        if mapping:
            key = self._key_of(room_id)
            # One round trip: the room's writer holds a pooled connection the shortest time.
            pipe = self._redis.pipeline(transaction=False)
            pipe.hset(key, mapping=mapping)  # type: ignore[arg-type,unused-ignore]
            pipe.expire(key, int(self._ttl * 4))
            await pipe.execute()

    async def remove(self, room_id: str, *user_ids: str) -> None:
        fields = [f"{user_id}:{self._instance}" for user_id in user_ids]
        if fields:
            await self._redis.hdel(self._key_of(room_id), *fields)

    async def members(self, room_id: str) -> dict[str, str]:
        key = self._key_of(room_id)
        entries: dict[Any, Any] = await self._redis.hgetall(key)
        now = time.time()
        present: dict[str, str] = {}
        stale: list[Any] = []
        for field, value in entries.items():
            expires, _, name = value.decode().partition(" ")
            if int(expires) <= now:
                stale.append(field)
                continue
            present[field.decode().rsplit(":", 1)[0]] = name
        if stale:
            await self._redis.hdel(key, *stale)
        return present
