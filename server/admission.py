"""Admission control for websocket upgrades: refuse at once while the instance is saturated.

A reconnect storm that is let in all at once makes every connection slow: handshakes
queue behind each other and the time to `ready` climbs into seconds. Refusing some
upgrades with 503 and a jittered `Retry-After` keeps the admitted ones fast and spreads
the rest over the next seconds. The check reads three numbers the process already has
(no database, no Redis), so a refusal costs less than the handshake it saves.

Saturated means any of:

- too many handshakes in progress: upgrades accepted and not yet `ready` (they wait for
  their `auth` frame, the token check, the user lookup);
- the event loop running late: a timer that should fire every `LAG_INTERVAL` seconds
  fires more than `max_loop_lag` late, or is overdue by that much right now;
- the open connections at their cap, when one is set.

Connections already open are never affected.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

logger = logging.getLogger(__name__)

LAG_INTERVAL = 0.1  # seconds between two lag measurements
LOG_EVERY = 10.0  # seconds between two warnings that upgrades are being refused


class RefusalCause(enum.StrEnum):
    """Why a websocket was refused or closed before `ready`: the `cause` label of
    `roomcast_ws_refusals_total` (docs/operations.md, Metrics)."""

    SATURATED = "saturated"  # too many handshakes in progress, or the event loop late
    FULL = "full"  # WS_MAX_CONNECTIONS open connections
    ORIGIN = "origin"  # the upgrade's Origin is not allowed (403)
    AUTH = "auth"  # a bad header token (401) or a bad first frame (4401, 1003)
    AUTH_TIMEOUT = "auth_timeout"  # no auth frame in time (4408)
    UNAVAILABLE = "unavailable"  # the token could not be checked (503, or error + 1011)


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """What saturated means (0 turns the lag and connection limits off), and the base of
    the `Retry-After` a refused client is told."""

    # Above the 1,000 handshakes of a storm of healthy clients all reconnecting at once,
    # which one busy core lets in without refusals and without a second of loop lag.
    max_handshakes: int = 2000
    max_loop_lag: float = 1.0
    max_connections: int = 0
    retry_after: int = 2


class Admission:
    """Counts handshakes, watches the event loop's lag, and says when to refuse.

    Args:
        limits: the thresholds.
        open_connections: how many connections are open (authenticated) right now.
        clock: monotonic seconds; tests inject their own.
        rng: the source of `Retry-After` jitter.
    """

    def __init__(
        self,
        limits: AdmissionLimits,
        open_connections: Callable[[], int],
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.limits = limits
        self.handshakes = 0
        self.lag = 0.0  # seconds the last timer fired late
        self._open_connections = open_connections
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._due: float | None = None  # when the running lag timer should fire
        self._warned_at: float | None = None

    def refusal(self) -> RefusalCause | None:
        """Why a new upgrade must be refused now, or None to admit it."""
        limits = self.limits
        if self.handshakes >= limits.max_handshakes:
            return RefusalCause.SATURATED
        if limits.max_loop_lag and self.current_lag() > limits.max_loop_lag:
            return RefusalCause.SATURATED
        if limits.max_connections and (
            self._open_connections() + self.handshakes >= limits.max_connections
        ):
            return RefusalCause.FULL
        return None

    def refused(self, cause: RefusalCause) -> None:
        """Note a refusal: a warning with the numbers behind it, at most every `LOG_EVERY`
        seconds (a storm is refused thousands of times a second)."""
        now = self._clock()
        if self._warned_at is not None and now - self._warned_at < LOG_EVERY:
            return
        self._warned_at = now
        logger.warning(
            "admission: refusing websocket upgrades (%s): %d handshakes in progress, "
            "event loop %.3f s late, %d connections open",
            cause,
            self.handshakes,
            self.current_lag(),
            self._open_connections(),
        )

    def retry_after(self) -> int:
        """Whole seconds to wait, drawn from `retry_after` to 3 times it, so that clients
        refused together do not all come back together."""
        base = self.limits.retry_after
        return self._rng.randint(base, 3 * base)

    @contextmanager
    def handshake(self) -> Iterator[None]:
        """Count one handshake in progress for the duration of the block."""
        self.handshakes += 1
        try:
            yield
        finally:
            self.handshakes -= 1

    def current_lag(self) -> float:
        """The last measured lag, or how overdue the running timer is, if more: a loop
        stuck in one long turn is late before the timer can say so."""
        if self._due is None:
            return self.lag
        return max(self.lag, self._clock() - self._due)

    async def watch_lag(self) -> None:
        """Measure the loop's lag every `LAG_INTERVAL` seconds, until cancelled."""
        while True:
            self._due = self._clock() + LAG_INTERVAL
            await asyncio.sleep(LAG_INTERVAL)
            self.lag = max(0.0, self._clock() - self._due)
