"""A small key-value store with expiry, for rate limits, denylists and counters.

`RedisKeyValue` holds across instances; `MemoryKeyValue` is the single-instance default.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from storage.redis import RedisClient, unavailable_when_down


class KeyValue(Protocol):
    """The operations rate limits, the token denylist and quotas need.

    A store that cannot be reached raises `errors.Unavailable`.
    """

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...

    async def set_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool: ...

    async def delete(self, *keys: str) -> None: ...

    async def incr(self, key: str, ttl: float | None = None) -> int:
        """Add one and return the new value; `ttl` is set when the key is created."""
        ...

    async def ttl(self, key: str) -> float | None:
        """Seconds until `key` expires; None when it does not exist or never expires."""
        ...


class MemoryKeyValue:
    """In-process `KeyValue`: a bounded LRU dict with lazy expiry."""

    def __init__(
        self, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._data: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._max = max_entries
        self._now = clock

    def _live(self, key: str) -> tuple[bytes, float | None] | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[1] is not None and entry[1] <= self._now():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return entry

    def _put(self, key: str, value: bytes, ttl: float | None) -> None:
        self._data[key] = (value, None if ttl is None else self._now() + ttl)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    async def get(self, key: str) -> bytes | None:
        entry = self._live(key)
        return None if entry is None else entry[0]

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._put(key, value, ttl)

    async def set_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        if self._live(key) is not None:
            return False
        self._put(key, value, ttl)
        return True

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._data.pop(key, None)

    async def incr(self, key: str, ttl: float | None = None) -> int:
        entry = self._live(key)
        if entry is None:
            self._put(key, b"1", ttl)
            return 1
        value = int(entry[0]) + 1
        self._data[key] = (str(value).encode(), entry[1])
        return value

    async def ttl(self, key: str) -> float | None:
        entry = self._live(key)
        if entry is None or entry[1] is None:
            return None
        return max(0.0, entry[1] - self._now())


class RedisKeyValue:
    """`KeyValue` on Redis, every key under `prefix`.

    Raises `Unavailable` whenever Redis fails (down, timed out, pool exhausted).
    """

    def __init__(self, client: RedisClient, prefix: str = "rc:kv:") -> None:
        self._redis = client
        self._prefix = prefix

    async def get(self, key: str) -> bytes | None:
        with unavailable_when_down():
            value = await self._redis.get(self._prefix + key)
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        with unavailable_when_down():
            await self._redis.set(self._prefix + key, value, px=_ms(ttl))

    async def set_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        with unavailable_when_down():
            return bool(await self._redis.set(self._prefix + key, value, px=_ms(ttl), nx=True))

    async def delete(self, *keys: str) -> None:
        if keys:
            with unavailable_when_down():
                await self._redis.delete(*(self._prefix + k for k in keys))

    async def incr(self, key: str, ttl: float | None = None) -> int:
        full = self._prefix + key
        with unavailable_when_down():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(full)
                if ttl is not None:
                    pipe.pexpire(full, _ms(ttl) or 1, nx=True)
                results = await pipe.execute()
        return int(results[0])

    async def ttl(self, key: str) -> float | None:
        with unavailable_when_down():
            millis = int(await self._redis.pttl(self._prefix + key))
        return None if millis < 0 else millis / 1000


def _ms(ttl: float | None) -> int | None:
    return None if ttl is None else max(1, int(ttl * 1000))
