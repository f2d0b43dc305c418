"""A JSON cache over a `KeyValue`, for read-mostly lists (a team's rooms, say).

Writers invalidate by key after they commit, so a read right after a change is never stale.
"""

from __future__ import annotations

from typing import Any

import orjson

from storage.kv import KeyValue


class Cache:
    """Get, set and invalidate JSON values under a namespace, with a TTL as a safety net."""

    def __init__(self, store: KeyValue, *, namespace: str = "cache:", ttl: float = 300.0) -> None:
        self._store = store
        self._namespace = namespace
        self._ttl = ttl

    async def get(self, key: str) -> Any | None:
        raw = await self._store.get(self._namespace + key)
        return None if raw is None else orjson.loads(raw)

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        await self._store.set(self._namespace + key, orjson.dumps(value), ttl or self._ttl)

    async def invalidate(self, *keys: str) -> None:
        await self._store.delete(*(self._namespace + k for k in keys))
