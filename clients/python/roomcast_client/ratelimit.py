"""A token bucket for the client's own frames (the server closes 4429 above its limit)."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """`rate` tokens a second, holding at most `burst`; `take()` waits for one."""

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._stamp = time.monotonic()

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await asyncio.sleep((1 - self._tokens) / self._rate)
