"""The self-probe: an instance publishes on its own probe topic and reads itself back.

It proves the whole bus path (publish, the shard reader, dispatch) end to end. The lag
goes to `/metrics`; `/ready` and the acceptance of `send`s depend on having heard the
last probe recently, so an instance whose reader went deaf after a Redis blip stops
taking messages it could not deliver, and is ready again once it hears itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from prometheus_client import Gauge

from storage.bus import Bus, BusEvent, Subscription

logger = logging.getLogger(__name__)


class Probe:
    """Publish every `interval`; healthy while the newest echo is at most `stale_after` old.

    The topic is new with every probe (every start of the instance): only this instance
    reads it.
    """

    def __init__(
        self, bus: Bus, lag: Gauge, *, interval: float = 1.0, stale_after: float = 5.0
    ) -> None:
        self._bus = bus
        self._topic = f"probe:{uuid.uuid4().hex[:12]}"
        self._lag = lag
        self._interval = interval
        self._stale_after = stale_after
        self._heard_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._subscription: Subscription | None = None
        self._first_echo = asyncio.Event()

    def healthy(self) -> bool:
        heard = self._heard_at
        return heard is not None and time.monotonic() - heard <= self._stale_after

    def _echo(self, event: BusEvent) -> None:
        sent = float(event.data)
        now = time.monotonic()
        self._heard_at = now
        self._lag.set(now - sent)
        self._first_echo.set()

    async def start(self, wait: float = 2.0) -> None:
        """Start probing; wait (a little) for the first echo so readiness starts true."""
        self._task = asyncio.create_task(self._run(), name="bus probe")
        try:
            async with asyncio.timeout(wait):
                await self._first_echo.wait()
        except TimeoutError:
            logger.warning("bus probe: no echo within %.1f s of start", wait)

    async def _run(self) -> None:
        while True:
            try:
                if self._subscription is None:
                    self._subscription = await self._bus.subscribe(self._topic, self._echo)
                await self._bus.publish(self._topic, repr(time.monotonic()).encode())
            except Exception as exc:  # noqa: BLE001 - the probe reports; it never stops
                logger.warning("bus probe failed: %r", exc)
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._subscription is not None:
            self._subscription.close()
