"""ResilientLLM around GeminiLLM, through the real SDK against the fake Gemini server:
timeouts, retries before the first token only, and the circuit breaker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.llm import GeminiLLM, ResilientLLM
from tests.fakes.gemini import (
    FakeGemini,
    blocked_prompt,
    error_mid_stream,
    http_error,
    reply,
    slow_first_token,
    stall,
    tokens,
)
from tests.server.llm.conftest import PROMPT, collect, ended, failing, text_of

COOLDOWN = 30.0


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sleeps:
    """Records backoff waits instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make(gemini: GeminiLLM, clock: Clock, sleeps: Sleeps) -> Any:
    def make(**overrides: Any) -> ResilientLLM:
        options: dict[str, Any] = {
            "first_token_timeout": 5.0,
            "idle_timeout": 5.0,
            "retries": 2,
            "backoff_base": 0.2,
            "breaker_failures": 3,
            "breaker_cooldown": COOLDOWN,
            "clock": clock,
            "sleep": sleeps,
        }
        return ResilientLLM(gemini, **(options | overrides))

    return make


async def failure_code(llm: ResilientLLM) -> str:
    _, error = await failing(llm.stream(PROMPT))
    return error.code


async def requests_reach(fake: FakeGemini, count: int) -> None:
    """Wait until the fake has received `count` requests (a guard, not a measured time)."""
    async with asyncio.timeout(5.0):
        while len(fake.requests) < count:
            await asyncio.sleep(0.005)


async def test_a_503_before_the_first_token_is_retried_and_answered_once(
    fake: FakeGemini, make: Any, sleeps: Sleeps
) -> None:
    fake.script(http_error(503), reply("Hello", " again."))
    llm = make()

    chunks = await collect(llm.stream(PROMPT))

    assert text_of(chunks) == "Hello again."
    assert chunks[-1].finish == "stop"
    assert len(fake.requests) == 2
    assert sleeps.delays == [0.2]
    assert llm.breaker_state == "closed"


async def test_rate_limiting_is_retried_with_exponential_backoff_until_retries_run_out(
    fake: FakeGemini, make: Any, sleeps: Sleeps
) -> None:
    fake.script(http_error(429), http_error(429), http_error(429), reply("unused"))

    assert await failure_code(make(breaker_failures=10)) == "rate_limited"

    assert len(fake.requests) == 3
    assert sleeps.delays == [0.2, 0.4]


async def test_an_error_after_the_first_token_is_not_retried(
    fake: FakeGemini, make: Any, sleeps: Sleeps
) -> None:
    fake.script(error_mid_stream("Half", " of it"), reply("unused"))

    chunks, error = await failing(make().stream(PROMPT))

    assert error.code == "unavailable"
    assert text_of(chunks) == "Half of it"
    assert len(fake.requests) == 1
    assert sleeps.delays == []


async def test_a_blocked_prompt_is_not_retried_and_leaves_the_breaker_closed(
    fake: FakeGemini, make: Any
) -> None:
    llm = make(breaker_failures=1)
    fake.script(blocked_prompt())

    assert await failure_code(llm) == "blocked"

    assert len(fake.requests) == 1
    assert llm.breaker_state == "closed"


async def test_a_refused_request_is_not_retried(fake: FakeGemini, make: Any) -> None:
    fake.script(http_error(400), reply("unused"))

    assert await failure_code(make()) == "unavailable"

    assert len(fake.requests) == 1


async def test_no_first_token_within_the_timeout_is_stalled_and_stops_the_request(
    fake: FakeGemini, make: Any
) -> None:
    fake.script(slow_first_token(10.0, "too late"))

    # A second, not less: on a loaded machine the request may take a while to arrive.
    assert await failure_code(make(first_token_timeout=1.0, retries=0)) == "stalled"

    request = await ended(fake.requests[0])
    assert request.disconnected
    assert request.chunks_sent == 0


async def test_a_stall_before_the_first_token_is_retried(fake: FakeGemini, make: Any) -> None:
    fake.script(slow_first_token(10.0, "too late"), reply("In", " time."))

    chunks = await collect(make(first_token_timeout=1.0).stream(PROMPT))

    assert text_of(chunks) == "In time."
    assert len(fake.requests) == 2
    assert (await ended(fake.requests[0])).disconnected


async def test_a_gap_longer_than_the_idle_timeout_is_stalled_without_a_retry(
    fake: FakeGemini, make: Any
) -> None:
    fake.script(stall("Well,", " you see", seconds=10.0), reply("unused"))

    chunks, error = await failing(make(idle_timeout=0.5).stream(PROMPT))

    assert error.code == "stalled"
    assert text_of(chunks) == "Well, you see"
    assert len(fake.requests) == 1
    assert (await ended(fake.requests[0])).disconnected


async def test_the_breaker_opens_after_consecutive_failures_then_fails_without_a_request(
    fake: FakeGemini, make: Any
) -> None:
    llm = make(retries=0)
    fake.script(http_error(503), http_error(500), http_error(429), reply("unused"))
    codes = [await failure_code(llm) for _ in range(3)]
    assert llm.breaker_state == "open"

    _, error = await failing(llm.stream(PROMPT))

    assert codes == ["unavailable", "unavailable", "rate_limited"]
    assert error.code == "unavailable"
    assert error.message == "model provider is unavailable"
    assert len(fake.requests) == 3


async def test_each_retry_counts_as_a_failed_request_for_the_breaker(
    fake: FakeGemini, make: Any
) -> None:
    llm = make(retries=5)
    fake.script(*(http_error(503) for _ in range(5)))

    assert await failure_code(llm) == "unavailable"

    assert len(fake.requests) == 3  # the third failure opened it; no more retries went out
    assert llm.breaker_state == "open"


async def test_a_successful_probe_after_the_cooldown_closes_the_breaker(
    fake: FakeGemini, make: Any, clock: Clock
) -> None:
    llm = make(retries=0)
    fake.script(*(http_error(503) for _ in range(3)), reply("Back", " again."))
    for _ in range(3):
        await failure_code(llm)
    clock.now += COOLDOWN - 1
    assert llm.breaker_state == "open"
    clock.now += 1
    assert llm.breaker_state == "half_open"

    chunks = await collect(llm.stream(PROMPT))

    assert text_of(chunks) == "Back again."
    assert llm.breaker_state == "closed"
    assert len(fake.requests) == 4


async def test_a_failed_probe_opens_the_breaker_for_another_cooldown(
    fake: FakeGemini, make: Any, clock: Clock
) -> None:
    llm = make(retries=2)
    fake.script(*(http_error(503) for _ in range(4)))
    await failure_code(llm)
    clock.now += COOLDOWN

    assert await failure_code(llm) == "unavailable"

    assert len(fake.requests) == 4  # the probe only: no retry past the re-opened breaker
    assert llm.breaker_state == "open"
    clock.now += COOLDOWN
    assert llm.breaker_state == "half_open"


async def test_while_the_probe_is_out_other_prompts_fail_at_once(
    fake: FakeGemini, make: Any, clock: Clock
) -> None:
    llm = make(retries=0)
    fake.script(*(http_error(503) for _ in range(3)), slow_first_token(10.0, "x"))
    for _ in range(3):
        await failure_code(llm)
    clock.now += COOLDOWN
    probe = asyncio.create_task(collect(llm.stream(PROMPT)))
    await requests_reach(fake, 4)

    assert await failure_code(llm) == "unavailable"

    assert len(fake.requests) == 4
    assert llm.breaker_state == "half_open"
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe


async def test_a_cancelled_probe_lets_the_next_prompt_probe(
    fake: FakeGemini, make: Any, clock: Clock
) -> None:
    llm = make(retries=0)
    fake.script(*(http_error(503) for _ in range(3)), slow_first_token(10.0, "x"), reply("Ok."))
    for _ in range(3):
        await failure_code(llm)
    clock.now += COOLDOWN
    probe = asyncio.create_task(collect(llm.stream(PROMPT)))
    await requests_reach(fake, 4)

    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe

    assert llm.breaker_state == "half_open"
    assert text_of(await collect(llm.stream(PROMPT))) == "Ok."
    assert llm.breaker_state == "closed"
    assert (await ended(fake.requests[3])).disconnected


async def test_closing_the_stream_mid_answer_stops_the_upstream_request(
    fake: FakeGemini, make: Any
) -> None:
    fake.script(tokens(40, rate=20))
    stream = make().stream(PROMPT)
    received = [await anext(stream) for _ in range(2)]

    await stream.aclose()

    request = await ended(fake.requests[0])
    assert request.disconnected
    assert request.chunks_sent < 40
    assert text_of(received) == "t0 t1 "


async def test_cancelling_while_waiting_for_the_first_token_stops_the_request(
    fake: FakeGemini, make: Any
) -> None:
    llm = make()
    fake.script(slow_first_token(10.0, "x"))
    task = asyncio.create_task(collect(llm.stream(PROMPT)))
    await requests_reach(fake, 1)

    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await ended(fake.requests[0])).disconnected
    assert llm.breaker_state == "closed"
    assert len(fake.requests) == 1
