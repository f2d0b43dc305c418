"""A fake Gemini server per test, GeminiLLM pointed at it through the real SDK, and helpers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import pytest

from actors.llm import Chunk, LLMError, Prompt, Turn
from server.llm import GeminiLLM
from tests.fakes.gemini import FakeGemini, Recorded

MODEL = "gemini-test"
API_KEY = "test-api-key"

PROMPT = Prompt(
    system="You are the assistant of the room #lobby.",
    turns=(
        Turn("user", "Ada: what is a monad?"),
        Turn("model", "A monoid in the category of endofunctors."),
        Turn("user", "Bob: in plain words, please?"),
    ),
    max_output_tokens=256,
    temperature=0.4,
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    server = FakeGemini()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def gemini(fake: FakeGemini) -> AsyncIterator[GeminiLLM]:
    llm = GeminiLLM(API_KEY, MODEL, base_url=fake.base_url, request_timeout_s=10.0)
    yield llm
    await llm.close()


async def collect(stream: AsyncGenerator[Chunk, None]) -> list[Chunk]:
    """Every chunk of a stream, closing it whatever happens."""
    chunks: list[Chunk] = []
    try:
        async for chunk in stream:
            chunks.append(chunk)
    finally:
        await stream.aclose()
    return chunks


async def failing(stream: AsyncGenerator[Chunk, None]) -> tuple[list[Chunk], LLMError]:
    """The chunks a stream yields before it fails, and its LLMError (which it must raise)."""
    chunks: list[Chunk] = []
    try:
        async for chunk in stream:
            chunks.append(chunk)
    except LLMError as exc:
        return chunks, exc
    finally:
        await stream.aclose()
    pytest.fail(f"the stream ended without an LLMError after {chunks}")


def text_of(chunks: list[Chunk]) -> str:
    return "".join(chunk.text for chunk in chunks)


async def ended(request: Recorded) -> Recorded:
    """The request once the fake has finished with it (a guard, not a measured time)."""
    await asyncio.wait_for(request.done.wait(), timeout=5.0)
    return request
