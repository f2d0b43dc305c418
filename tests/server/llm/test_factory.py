"""build_llm: Gemini when a key is set, the offline model otherwise, both made resilient."""

from __future__ import annotations

from server.config import Settings
from server.llm import ResilientLLM, build_llm
from tests.fakes.gemini import FakeGemini, reply
from tests.server.llm.conftest import PROMPT, collect, text_of


async def test_without_an_api_key_the_offline_model_answers() -> None:
    llm = build_llm(Settings(gemini_api_key=None, ai_offline_delay=0))

    chunks = await collect(llm.stream(PROMPT))

    assert isinstance(llm, ResilientLLM)
    assert llm.model == "roomcast-offline"
    assert text_of(chunks).startswith("(offline model)")
    await llm.close()


async def test_ai_provider_offline_wins_over_an_api_key() -> None:
    settings = Settings(ai_provider="offline", gemini_api_key="k-123", ai_offline_delay=0)
    llm = build_llm(settings)

    assert llm.model == "roomcast-offline"
    await llm.close()


async def test_with_an_api_key_gemini_answers_from_the_configured_base_url(
    fake: FakeGemini,
) -> None:
    settings = Settings(
        gemini_api_key="k-123", gemini_model="gemini-x", gemini_base_url=fake.base_url
    )
    fake.script(reply("From", " Gemini."))
    llm = build_llm(settings)

    try:
        chunks = await collect(llm.stream(PROMPT))
    finally:
        await llm.close()

    assert llm.model == "gemini-x"
    assert text_of(chunks) == "From Gemini."
    assert fake.requests[0].model == "gemini-x"
    assert fake.requests[0].headers["x-goog-api-key"] == "k-123"
