"""`ResilientLLM`: timeouts, retries before the first chunk, and a circuit breaker, around
any `LLM`.

- No stream can hang: the first chunk must come within `first_token_timeout`, every
  further one within `idle_timeout` of the previous, else `StreamStalled` (and the inner
  stream is closed, which stops its upstream request).
- A failed request is retried with exponential backoff, but only while nothing has
  been yielded: once a client has seen text, a retry would show it a different answer.
  Only errors that may pass are retried (`retryable`: outages, 429, a first-token stall).
- A circuit breaker counts consecutive failed upstream requests (unavailable,
  rate-limited, stalled). At `breaker_failures` it opens: `stream()` fails at once with
  `ProviderUnavailable` and the provider is left alone. After `breaker_cooldown` one
  probe request goes through (half-open); its first chunk closes the breaker, its
  failure opens it again for another cool-down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Literal

from actors.llm import LLM, Chunk, LLMError, Prompt, ProviderUnavailable, StreamStalled

BreakerState = Literal["closed", "open", "half_open"]

# Failures that say something about the provider's health; `blocked` says something
# about the prompt.
_PROVIDER_FAILURES = frozenset({"unavailable", "rate_limited", "stalled"})


class CircuitBreaker:
    """Consecutive-failure breaker with a cool-down and a single half-open probe."""

    def __init__(self, failures: int, cooldown: float, clock: Callable[[], float]) -> None:
        self._threshold = failures
        self._cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._probing or self._clock() - self._opened_at >= self._cooldown:
            return "half_open"
        return "open"

    def admit(self) -> bool:
        """Let one request through; True when it is the half-open probe.

        Raises:
            ProviderUnavailable: the breaker is open, or half-open with its probe out.
        """
        state = self.state
        if state == "closed":
            return False
        if state == "half_open" and not self._probing:
            self._probing = True
            return True
        # Not retryable: retrying at once would only meet the open breaker again.
        raise ProviderUnavailable(retryable=False)

    def succeeded(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def failed(self) -> None:
        self._failures += 1
        self._probing = False
        if self._opened_at is not None or self._failures >= self._threshold:
            self._opened_at = self._clock()

    def abandoned(self, probe: bool) -> None:
        """A request ended with no verdict (cancelled, or refused for its prompt)."""
        if probe:
            self._probing = False


class ResilientLLM:
    """Wraps an `LLM` with first-token and idle timeouts, retries and a circuit breaker.

    Args:
        inner: the provider.
        first_token_timeout: seconds the first chunk of a request may take.
        idle_timeout: seconds allowed between two chunks.
        retries: further attempts after a failed first one, before the first chunk only.
        backoff_base: the wait before retry n (from 0) is `backoff_base * 2**n` seconds.
        breaker_failures: consecutive failed requests that open the breaker.
        breaker_cooldown: seconds the breaker stays open before a probe may go through.
        clock, sleep: time sources, replaceable in tests.
    """

    def __init__(
        self,
        inner: LLM,
        *,
        first_token_timeout: float,
        idle_timeout: float,
        retries: int,
        backoff_base: float,
        breaker_failures: int,
        breaker_cooldown: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._inner = inner
        self._first_token_timeout = first_token_timeout
        self._idle_timeout = idle_timeout
        self._retries = retries
        self._backoff_base = backoff_base
        self._sleep = sleep
        self._breaker = CircuitBreaker(breaker_failures, breaker_cooldown, clock)

    @property
    def model(self) -> str:
        return self._inner.model

    @property
    def breaker_state(self) -> BreakerState:
        """The breaker's state: "closed", "open" or "half_open" (for tests and metrics)."""
        return self._breaker.state

    async def stream(self, prompt: Prompt) -> AsyncGenerator[Chunk, None]:
        """The inner stream, guarded; see the module docstring. Raises LLMError."""
        inner, chunk = await self._open(prompt)
        try:
            while True:
                yield chunk
                if chunk.finish is not None:
                    return
                try:
                    chunk = await _next(inner, self._idle_timeout)
                except StopAsyncIteration:
                    return
        except LLMError as exc:
            if exc.code in _PROVIDER_FAILURES:
                self._breaker.failed()
            raise
        finally:
            await inner.aclose()

    async def warm_up(self) -> None:
        await self._inner.warm_up()

    async def close(self) -> None:
        await self._inner.close()

    async def _open(self, prompt: Prompt) -> tuple[AsyncGenerator[Chunk, None], Chunk]:
        """Start a request and wait for its first chunk, retrying as allowed."""
        attempt = 0
        while True:
            try:
                return await self._attempt(prompt)
            except LLMError as exc:
                if not exc.retryable or attempt >= self._retries:
                    raise
            await self._sleep(self._backoff_base * 2**attempt)
            attempt += 1

    async def _attempt(self, prompt: Prompt) -> tuple[AsyncGenerator[Chunk, None], Chunk]:
        """One upstream request up to its first chunk; the breaker hears how it went."""
        probe = self._breaker.admit()
        inner = self._inner.stream(prompt)
        first: Chunk | None = None
        healthy: bool | None = None  # None: no verdict (cancelled, or a bug of ours)
        try:
            first = await _next(inner, self._first_token_timeout)
            healthy = True
        except StopAsyncIteration:
            healthy = False
            raise ProviderUnavailable("the model returned no answer") from None
        except LLMError as exc:
            # A blocked prompt is the provider working as it should.
            healthy = exc.code not in _PROVIDER_FAILURES
            raise
        finally:
            if first is None:
                await inner.aclose()
            self._settle(healthy, probe)
        return inner, first

    def _settle(self, healthy: bool | None, probe: bool) -> None:
        if healthy is None:
            self._breaker.abandoned(probe)
        elif healthy:
            self._breaker.succeeded()
        else:
            self._breaker.failed()


async def _next(stream: AsyncGenerator[Chunk, None], timeout: float) -> Chunk:
    """The stream's next chunk within `timeout` seconds, else StreamStalled."""
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            return await anext(stream)
    except TimeoutError:
        if deadline.expired():
            raise StreamStalled() from None
        raise
