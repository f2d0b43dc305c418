"""Fixed-window rate limits on the shared key-value store, so they hold across instances."""

from __future__ import annotations

import math

from errors import RateLimited
from storage.kv import KeyValue


class RateLimiter:
    """Count hits per key in windows of `window` seconds; past `limit`, refuse until it ends."""

    def __init__(self, kv: KeyValue, *, prefix: str = "rl:") -> None:
        self._kv = kv
        self._prefix = prefix

    async def hit(self, key: str, *, limit: int, window: float) -> None:
        """Count one hit on `key`.

        Raises:
            RateLimited: more than `limit` hits in the current window; `retry_after` is
                the whole seconds until the window ends.
        """
        full_key = self._prefix + key
        count = await self._kv.incr(full_key, ttl=window)
        if count <= limit:
            return
        remaining = await self._kv.ttl(full_key)
        raise RateLimited(retry_after=math.ceil(remaining if remaining is not None else window))

    async def allow(self, key: str, *, limit: int, window: float) -> bool:
        """Like `hit`, but answers False instead of raising (for silent limits)."""
        count = await self._kv.incr(self._prefix + key, ttl=window)
        return count <= limit
