"""GeminiLLM through the real google-genai SDK against the fake Gemini server."""

from __future__ import annotations

import asyncio

import pytest

from actors.llm import Chunk, Prompt, Turn, Usage
from server.llm import GeminiLLM
from tests.fakes.gemini import (
    FakeGemini,
    Script,
    blocked_prompt,
    continuation,
    empty_max_tokens,
    error_mid_stream,
    event,
    http_error,
    reply,
    safety_finish,
    tokens,
)
from tests.server.llm.conftest import API_KEY, MODEL, PROMPT, collect, ended, failing, text_of


async def test_an_answer_streams_as_text_chunks_ending_with_stop_and_usage(
    fake: FakeGemini, gemini: GeminiLLM
) -> None:
    fake.script(reply("Think of", " a box", " with rules.", prompt_tokens=31))

    chunks = await collect(gemini.stream(PROMPT))

    assert chunks == [
        Chunk("Think of"),
        Chunk(" a box"),
        Chunk(" with rules.", "stop", Usage(input_tokens=31, output_tokens=3)),
    ]
    assert gemini.model == MODEL


async def test_warm_up_sends_nothing_and_the_first_answer_still_streams(
    fake: FakeGemini, gemini: GeminiLLM
) -> None:
    await gemini.warm_up()
    await gemini.warm_up()  # harmless twice (start-up may run it again after a restart)
    assert fake.requests == []
    fake.script(reply("ready", prompt_tokens=3))

    chunks = await collect(gemini.stream(PROMPT))

    assert chunks == [Chunk("ready", "stop", Usage(input_tokens=3, output_tokens=1))]
    assert len(fake.requests) == 1


async def test_a_paced_token_script_streams_every_token_then_stops(
    fake: FakeGemini, gemini: GeminiLLM
) -> None:
    fake.script(tokens(5, rate=200, prompt_tokens=7))

    chunks = await collect(gemini.stream(PROMPT))

    assert text_of(chunks) == "t0 t1 t2 t3 t4 "
    assert chunks[-1] == Chunk("t4 ", "stop", Usage(input_tokens=7, output_tokens=5))
    assert fake.requests[0].first_chunk_at is not None


async def test_the_request_carries_system_instruction_roles_speakers_and_limits(
    fake: FakeGemini, gemini: GeminiLLM
) -> None:
    await collect(gemini.stream(PROMPT))

    [request] = fake.requests
    assert request.path == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert request.model == MODEL
    assert request.query == {"alt": "sse"}
    assert request.headers["x-goog-api-key"] == API_KEY
    body = request.body
    assert body["systemInstruction"]["parts"] == [{"text": PROMPT.system}]
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Ada: what is a monad?"}]},
        {"role": "model", "parts": [{"text": "A monoid in the category of endofunctors."}]},
        {"role": "user", "parts": [{"text": "Bob: in plain words, please?"}]},
    ]
    assert body["generationConfig"] == {"maxOutputTokens": 256, "temperature": 0.4}
    assert "safetySettings" not in body


async def test_a_prompt_without_system_or_temperature_sends_neither(
    fake: FakeGemini, gemini: GeminiLLM
) -> None:
    await collect(gemini.stream(Prompt(system=None, turns=(Turn("user", "Ada: hi"),))))

    body = fake.requests[0].body
    assert "systemInstruction" not in body
    assert body["generationConfig"] == {"maxOutputTokens": 1024}


async def test_a_blocked_prompt_raises_blocked_without_any_text(
    fake: FakeGemini, gemini: GeminiLLM
) -> None:
    fake.script(blocked_prompt("PROHIBITED_CONTENT"))

    chunks, error = await failing(gemini.stream(PROMPT))

    assert error.code == "blocked"
    assert not error.retryable
    assert "prohibited_content" in error.message
    assert chunks == []


async def test_an_empty_candidate_at_max_tokens_ends_with_length_and_no_text(
    fake: FakeGemini, gemini: GeminiLLM
) -> None:
    fake.script(empty_max_tokens())

    chunks = await collect(gemini.stream(PROMPT))

    assert chunks == [Chunk("", "length", Usage(input_tokens=12, output_tokens=0))]


async def test_an_answer_stopped_for_safety_keeps_its_text_and_ends_with_safety(
    fake: FakeGemini, gemini: GeminiLLM
) -> None:
    fake.script(safety_finish("Here is how", " you"))

    chunks = await collect(gemini.stream(PROMPT))

    assert text_of(chunks) == "Here is how you"
    assert chunks[-1] == Chunk("", "safety", Usage(input_tokens=12, output_tokens=2))


async def test_a_continued_answer_arrives_as_one_stream_from_two_requests(
    fake: FakeGemini, gemini: GeminiLLM
) -> None:
    fake.script(continuation("First half,", " then", checkpoint="aG9wLTE="), reply(" the rest."))

    chunks = await collect(gemini.stream(PROMPT))

    assert text_of(chunks) == "First half, then the rest."
    assert [chunk.finish for chunk in chunks] == [None, None, "stop"]
    # Usage is summed over the hops by the SDK: 12 + 12 prompt, 2 + 1 output.
    assert chunks[-1].usage == Usage(input_tokens=24, output_tokens=3)
    first, second = fake.requests
    assert "continuationToken" not in first.body
    assert second.body["continuationToken"]
    assert second.body["contents"] == first.body["contents"]


async def test_continuation_without_a_token_ends_the_answer_with_length(
    fake: FakeGemini, gemini: GeminiLLM
) -> None:
    fake.script(reply("Cut", " here", finish="CONTINUATION"))

    chunks = await collect(gemini.stream(PROMPT))

    assert chunks[-1].finish == "length"
    assert len(fake.requests) == 1


async def test_an_error_chunk_mid_stream_raises_unavailable_after_the_text_so_far(
    fake: FakeGemini, gemini: GeminiLLM
) -> None:
    fake.script(error_mid_stream("Partial", " answer"))

    chunks, error = await failing(gemini.stream(PROMPT))

    assert error.code == "unavailable"
    assert error.message == "model provider is unavailable"
    assert text_of(chunks) == "Partial answer"
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (429, "rate_limited", True),
        (503, "unavailable", True),
        (500, "unavailable", True),
        (400, "unavailable", False),
        (403, "unavailable", False),
    ],
)
async def test_an_http_error_before_streaming_maps_to_its_ai_error_code(
    fake: FakeGemini, gemini: GeminiLLM, status: int, code: str, retryable: bool
) -> None:
    fake.script(http_error(status))

    _, error = await failing(gemini.stream(PROMPT))

    assert (error.code, error.retryable) == (code, retryable)
    assert len(fake.requests) == 1


async def test_a_stream_that_ends_without_a_finish_reason_is_unavailable(
    fake: FakeGemini, gemini: GeminiLLM
) -> None:
    fake.script(Script((event("Half an"), event(" answer"))))

    chunks, error = await failing(gemini.stream(PROMPT))

    assert error.code == "unavailable"
    assert "cut off" in error.message
    assert text_of(chunks) == "Half an answer"


async def test_a_provider_that_refuses_connections_is_unavailable(fake: FakeGemini) -> None:
    llm = GeminiLLM(API_KEY, MODEL, base_url=fake.base_url, request_timeout_s=10.0)
    await fake.stop()
    try:
        _, error = await failing(llm.stream(PROMPT))
    finally:
        await llm.close()

    assert error.code == "unavailable"
    assert error.retryable


async def test_closing_the_stream_mid_answer_disconnects_the_upstream_request(
    fake: FakeGemini, gemini: GeminiLLM
) -> None:
    fake.script(tokens(40, rate=20))
    stream = gemini.stream(PROMPT)
    received = [await anext(stream) for _ in range(3)]

    await stream.aclose()

    request = await ended(fake.requests[0])
    assert request.disconnected
    assert request.chunks_sent < 40
    assert text_of(received) == "t0 t1 t2 "


async def test_cancelling_the_consumer_disconnects_the_upstream_request(
    fake: FakeGemini, gemini: GeminiLLM
) -> None:
    fake.script(tokens(40, rate=20))
    first = asyncio.Event()

    async def consume() -> None:
        async for _chunk in gemini.stream(PROMPT):
            first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    request = await ended(fake.requests[0])
    assert request.disconnected
    assert request.chunks_sent < 40


async def test_a_rooms_next_prompts_reuse_its_request_config_and_still_say_everything(
    fake: FakeGemini, gemini: GeminiLLM
) -> None:
    fake.script(reply("one"), reply("two"), reply("three"))
    other_room = Prompt("Be terse.", PROMPT.turns, max_output_tokens=64)
    longer = Prompt(PROMPT.system, (*PROMPT.turns, Turn("model", "ok"), Turn("user", "Ada: go")))

    for prompt in (PROMPT, other_room, longer):
        await collect(gemini.stream(prompt))

    first, second, third = (request.body for request in fake.requests)
    assert first["systemInstruction"] == third["systemInstruction"]
    assert first["systemInstruction"]["parts"][0]["text"] == PROMPT.system
    assert second["systemInstruction"]["parts"][0]["text"] == "Be terse."
    assert second["generationConfig"]["maxOutputTokens"] == 64
    assert third["generationConfig"]["maxOutputTokens"] == longer.max_output_tokens
    assert [c["parts"][0]["text"] for c in third["contents"]][-2:] == ["ok", "Ada: go"]
    assert [c["role"] for c in third["contents"]] == ["user", "model", "user", "model", "user"]
