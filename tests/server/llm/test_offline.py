"""OfflineLLM: deterministic, local, labelled, streamed word by word."""

from __future__ import annotations

import pytest

from actors.llm import Prompt, Turn
from server.llm import OfflineLLM
from server.llm.offline import compose_answer
from tests.server.llm.conftest import PROMPT, collect, text_of


async def test_the_same_prompt_always_gets_the_same_answer() -> None:
    llm = OfflineLLM(delay_s=0)

    first = await collect(llm.stream(PROMPT))
    second = await collect(OfflineLLM(delay_s=0).stream(PROMPT))

    assert first == second
    assert text_of(first) == compose_answer(PROMPT)


async def test_the_answer_streams_in_several_chunks_and_ends_with_stop_and_usage() -> None:
    chunks = await collect(OfflineLLM(delay_s=0).stream(PROMPT))

    assert len(chunks) > 10
    assert all(chunk.text for chunk in chunks)
    assert [chunk.finish for chunk in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1].finish == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.output_tokens == len(chunks)
    assert chunks[-1].usage.input_tokens == 25  # words of the system prompt and turns


async def test_the_answer_quotes_the_last_user_message_and_addresses_its_speaker() -> None:
    text = compose_answer(PROMPT)

    assert text.startswith("(offline model) Bob, you said: “in plain words, please?” ")
    assert "question" in text
    assert "2 earlier messages" in text
    assert "GEMINI_API_KEY" in text


async def test_a_long_message_is_quoted_in_part_and_a_keyword_is_picked() -> None:
    long = "Deployment " + "went fine " * 30
    text = compose_answer(Prompt(None, (Turn("user", long),)))

    assert "You said: “Deployment went fine" in text
    assert "…” " in text
    assert "“Deployment”" in text


async def test_different_prompts_get_different_reflections() -> None:
    answers = {
        compose_answer(Prompt(None, (Turn("user", f"Ada: shall we ship release {n}?"),))).split(
            "”.", 1
        )[1]
        for n in range(12)
    }

    assert len(answers) > 1


async def test_max_output_tokens_cuts_the_answer_with_length() -> None:
    prompt = Prompt(PROMPT.system, PROMPT.turns, max_output_tokens=5)

    chunks = await collect(OfflineLLM(delay_s=0).stream(prompt))

    assert len(chunks) == 5
    assert chunks[-1].finish == "length"
    assert text_of(chunks) == " ".join(compose_answer(PROMPT).split(" ")[:5])


async def test_it_names_itself_as_the_offline_model() -> None:
    llm = OfflineLLM(delay_s=0)

    assert llm.model == "roomcast-offline"
    await llm.close()


async def test_a_closed_stream_yields_nothing_more() -> None:
    stream = OfflineLLM(delay_s=0.01).stream(PROMPT)
    await anext(stream)

    await stream.aclose()

    with pytest.raises(StopAsyncIteration):
        await anext(stream)
