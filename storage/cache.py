"""A JSON cache over a `KeyValue`, for read-mostly lists (a team's rooms, say).

Writers invalidate by key after they commit, so a read right after a change is never stale.
A cache is never why a request fails: while the store is unavailable a read is a miss and
a write is skipped, and an invalidation that fails is retried before the cache's next use.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from errors import Unavailable
from storage.kv import KeyValue

logger = logging.getLogger(__name__)


class Cache:
    """Get, set and invalidate JSON values under a namespace, with a TTL as a safety net."""

    def __init__(self, store: KeyValue, *, namespace: str = "cache:", ttl: float = 300.0) -> None:
        self._store = store
        self._namespace = namespace
        self._ttl = ttl
        # Keys whose invalidation failed: deleted before anything is read or written, so
        # what they held cannot be served once the store is back. Should this process end
        # first, the TTL still bounds how long another one may serve them.
        self._unflushed: set[str] = set()

    async def get(self, key: str) -> Any | None:
        """The value, or None when absent or when the store is unavailable."""
        try:
            await self._flush()
            raw = await self._store.get(self._namespace + key)
        except Unavailable:
            return None
        return None if raw is None else orjson.loads(raw)

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store `value`; skipped when the store is unavailable."""
        try:
            await self._flush()
            await self._store.set(self._namespace + key, orjson.dumps(value), ttl or self._ttl)
        except Unavailable:
            pass

    async def invalidate(self, *keys: str) -> None:
        """Drop `keys`; when the store is unavailable, log it and drop them before next use."""
        self._unflushed.update(self._namespace + key for key in keys)
        try:
            await self._flush()
        except Unavailable as exc:
            logger.warning(
                "cache: %d invalidations wait for the store: %s", len(self._unflushed), exc
            )

    async def _flush(self) -> None:
        if self._unflushed:
            keys = tuple(self._unflushed)
            await self._store.delete(*keys)
            self._unflushed.difference_update(keys)
