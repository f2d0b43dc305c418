"""An operator watches the assistant on /metrics: time to first token, tokens, how
generations end, the breaker, the queues; through the real app, SDK and fake Gemini."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.fakes import gemini as scripts
from tests.server.ws.test_assistant import ai_client, answer, fake, prompt, ready_room

__all__ = ["ai_client", "fake"]  # fixtures, used by name


async def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_an_answer_and_a_failure_show_on_the_metrics(ai_client, fake, database) -> None:
    client = await ai_client()
    setup, (alice, _bob) = await ready_room(client, database)
    fake.script(scripts.reply("Hello", " there", prompt_tokens=17))
    await prompt(alice, setup.room_id)
    assert (await answer(alice))[-1]["type"] == "ai.end"
    fake.script(scripts.http_error(400))
    await prompt(alice, setup.room_id, "again")
    assert (await answer(alice))[-1]["code"] == "unavailable"

    seen = await scrape(client)
    model = fake.requests[0].path.split("/")[-1].split(":")[0]
    for since in ("commit", "request"):
        key = ("roomcast_ai_first_token_seconds_count", (("model", model), ("since", since)))
        assert seen[key] == 1
    assert seen[("roomcast_ai_generations_total", (("finish", "stop"), ("model", model)))] == 1
    assert seen[("roomcast_ai_errors_total", (("code", "unavailable"), ("model", model)))] == 1
    assert seen[("roomcast_ai_tokens_total", (("direction", "input"), ("model", model)))] == 17
    assert seen[("roomcast_ai_tokens_total", (("direction", "output"), ("model", model)))] == 2
    assert seen[("roomcast_ai_queue_depth_count", ())] == 2
    assert seen[("roomcast_ai_breaker_state", ())] == 0
