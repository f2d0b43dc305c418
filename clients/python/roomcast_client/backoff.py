"""Jittered exponential backoff, as section 5 of the protocol asks."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Full-jitter exponential backoff: wait a random time in [0, min(cap, base * 2**n)].

    Attributes:
        initial: the first delay's upper bound, in seconds.
        maximum: the cap on any delay.
        slow_initial: the first bound after a 4429 close (too many frames).
    """

    initial: float = 1.0
    maximum: float = 30.0
    slow_initial: float = 5.0
    attempts: int = field(default=0, init=False)
    _slow: bool = field(default=False, init=False)

    def next_delay(self, *, slow: bool = False, rng: random.Random | None = None) -> float:
        """The next wait, in seconds; `slow` switches to the 4429 scheme until `reset`."""
        self._slow = self._slow or slow
        base = self.slow_initial if self._slow else self.initial
        bound = min(self.maximum, base * (2**self.attempts))
        self.attempts += 1
        return (rng or random).uniform(0, bound)  # noqa: S311 - jitter, not security

    def reset(self) -> None:
        """Start again from `initial` (after a connection stayed up for a while)."""
        self.attempts = 0
        self._slow = False
