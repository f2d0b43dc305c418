"""The assistant in a room, end to end: websocket → room → real google-genai SDK → fake Gemini."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.realtime import LLM_KEY
from storage.models import Subscription
from tests.fakes import gemini as scripts
from tests.fakes.gemini import FakeGemini
from tests.server.ws.helpers import connect, join, receive, shared_room

AI_EVENTS = ("ai.start", "ai.delta", "ai.end", "ai.error", "message")


@pytest.fixture
async def fake():
    server = FakeGemini()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def ai_client(make_client, fake):
    async def start(**overrides: Any):
        settings = {
            "gemini_api_key": "test-key",
            "gemini_base_url": fake.base_url,
            "gemini_model": "gemini-test",
            "ai_retries": 0,
            "ai_idle_timeout": 1.0,
            "ai_first_token_timeout": 2.0,
            **overrides,
        }
        return await make_client(**settings)

    return start


async def answer(ws, *, until=("ai.end", "ai.error")) -> list[dict[str, Any]]:
    """The assistant's frames up to and including `ai.end` or `ai.error`."""
    frames = []
    while True:
        frame = await receive(ws)
        if frame["type"] in AI_EVENTS and frame.get("author", {}).get("kind") != "user":
            frames.append(frame)
        if frame["type"] in until:
            return frames


async def prompt(ws, room_id: str, body: str = "hello?", **extra: Any) -> None:
    await ws.send_json({"type": "send", "room": room_id, "body": body, "ai": True, **extra})


async def ready_room(client, database, count: int = 2, mode: str = "mention"):
    setup = await shared_room(client, database, count, assistant=mode)
    sockets = [await connect(client, account) for account in setup.accounts]
    for ws in sockets:
        await join(ws, setup.room_id)
    return setup, sockets


def deltas(frames: list[dict[str, Any]]) -> str:
    return "".join(f["text"] for f in frames if f["type"] == "ai.delta")


async def test_an_answer_streams_to_every_member_and_is_stored_once(ai_client, fake, database):
    client = await ai_client()
    fake.script(scripts.reply("Monads ", "are ", "burritos."))
    setup, (alice, bob) = await ready_room(client, database)
    await prompt(alice, setup.room_id, "what is a monad?")
    for ws in (alice, bob):
        frames = await answer(ws)
        kinds = [f["type"] for f in frames]
        assert kinds[0] == "ai.start" and kinds[-1] == "ai.end"
        start, end = frames[0], frames[-1]
        assert start["reply_to"] == 1 and start["model"] == "gemini-test"
        stored = next(f for f in frames if f["type"] == "message")
        assert stored["author"]["kind"] == "assistant"
        assert deltas(frames) == stored["body"] == "Monads are burritos."
        assert [f["i"] for f in frames if f["type"] == "ai.delta"] == [0, 1, 2]
        assert end["seq"] == stored["seq"] == 2 and end["finish"] == "stop"
        assert end["usage"]["output_tokens"] is not None
    history = await client.get(
        f"/api/v1/rooms/{setup.room_id}/messages", headers=setup.accounts[0].headers
    )
    items = (await history.json())["items"]
    assert [m["author"]["kind"] for m in items] == ["user", "assistant"]
    assert items[1]["body"] == "Monads are burritos."


async def test_nul_and_lone_surrogates_from_the_model_are_dropped_and_the_answer_is_stored(
    ai_client, fake, database
):
    client = await ai_client()
    # A surrogate pair split over two chunks is one character; other halves, and NUL,
    # can be neither stored nor shown.
    fake.script(scripts.reply("Hel\x00lo ", "smile \ud83d", "\ude00 x\udc00y", " \ud800"))
    setup, (alice,) = await ready_room(client, database, 1)
    await prompt(alice, setup.room_id)
    frames = await answer(alice)
    assert [f["type"] for f in frames][-1] == "ai.end", frames
    stored = next(f for f in frames if f["type"] == "message")
    assert deltas(frames) == stored["body"] == "Hello smile \U0001f600 xy "
    history = await client.get(
        f"/api/v1/rooms/{setup.room_id}/messages", headers=setup.accounts[0].headers
    )
    bodies = [item["body"] for item in (await history.json())["items"]]
    assert bodies == ["hello?", "Hello smile \U0001f600 xy "]


async def test_the_request_carries_system_prompt_roles_and_speaker_names(ai_client, fake, database):
    client = await ai_client()
    setup, (alice, bob) = await ready_room(client, database)
    changed = await client.patch(
        f"/api/v1/rooms/{setup.room_id}",
        json={"system_prompt": "Be terse."},
        headers=setup.accounts[0].headers,
    )
    assert changed.status == 200, await changed.text()
    await alice.send_json({"type": "send", "room": setup.room_id, "body": "hi all"})
    await prompt(bob, setup.room_id, "summarise please")
    await answer(alice)
    await prompt(alice, setup.room_id, "and again")
    await answer(alice)
    body = fake.requests[-1].body
    assert body["systemInstruction"]["parts"][0]["text"] == "Be terse."
    roles = [c["role"] for c in body["contents"]]
    assert roles == ["user", "model", "user"]
    first = body["contents"][0]["parts"][0]["text"]
    assert f"{setup.accounts[0].name}: hi all" in first
    assert f"{setup.accounts[1].name}: summarise please" in first
    assert body["contents"][2]["parts"][0]["text"] == f"{setup.accounts[0].name}: and again"
    assert fake.requests[-1].headers["x-goog-api-key"] == "test-key"


async def test_room_modes_decide_who_gets_an_answer(ai_client, fake, database):
    client = await ai_client()
    setup, (alice,) = await ready_room(client, database, 1, mode="mention")
    await alice.send_json({"type": "send", "room": setup.room_id, "body": "no ai flag"})
    await receive(alice, "ack")
    await prompt(alice, setup.room_id, "with the flag")
    frames = await answer(alice)
    assert frames[0]["reply_to"] == 2
    auto, (bob,) = await ready_room(client, database, 1, mode="auto")
    await bob.send_json({"type": "send", "room": auto.room_id, "body": "no flag needed"})
    assert (await answer(bob))[-1]["type"] == "ai.end"
    off, (carol,) = await ready_room(client, database, 1, mode="off")
    await prompt(carol, off.room_id, "please answer")
    await receive(carol, "ack")
    await carol.send_json({"type": "ping"})
    frame = await receive(carol)
    while frame["type"] == "presence":  # her own arrival: whenever the bus brings it back
        frame = await receive(carol)
    assert frame["type"] in ("message", "pong")
    assert len(fake.requests) == 2


async def test_cancel_by_the_prompter_stops_upstream_and_stores_the_partial_text(
    ai_client, fake, database
):
    client = await ai_client(ai_idle_timeout=5.0)
    fake.script(scripts.tokens(200, 20))
    setup, (alice, bob) = await ready_room(client, database)
    await prompt(alice, setup.room_id)
    start = await receive(bob, "ai.start")
    await receive(bob, "ai.delta")
    await bob.send_json({"type": "cancel", "room": setup.room_id, "gen": start["gen"], "id": 1})
    refused = await receive(bob, "error")
    assert refused["code"] == "forbidden"
    await alice.send_json({"type": "cancel", "room": setup.room_id, "gen": start["gen"], "id": 2})
    frames = await answer(alice)
    end = frames[-1]
    assert end["type"] == "ai.end" and end["finish"] == "cancelled"
    stored = next(f for f in frames if f["type"] == "message")
    assert stored["body"] == deltas(frames) and stored["body"].startswith("t0 ")
    async with asyncio.timeout(5):
        await fake.requests[0].done.wait()
    assert fake.requests[0].disconnected
    assert fake.requests[0].chunks_sent < 200


async def test_a_team_admin_may_cancel_anyones_generation(ai_client, fake, database):
    client = await ai_client(ai_idle_timeout=5.0)
    fake.script(scripts.tokens(200, 20))
    setup, (owner, member) = await ready_room(client, database)
    await prompt(member, setup.room_id)
    start = await receive(owner, "ai.start")
    await owner.send_json({"type": "cancel", "room": setup.room_id, "gen": start["gen"], "id": 9})
    assert (await receive(owner, "ack"))["re"] == 9
    assert (await answer(member))[-1]["finish"] == "cancelled"


async def test_joining_mid_answer_gets_the_text_so_far_then_live_deltas(ai_client, fake, database):
    client = await ai_client(ai_idle_timeout=5.0)
    fake.script(scripts.tokens(30, 30))
    setup = await shared_room(client, database, 2, assistant="mention")
    alice = await connect(client, setup.accounts[0])
    await join(alice, setup.room_id)
    await prompt(alice, setup.room_id)
    for _ in range(5):
        await receive(alice, "ai.delta")
    bob = await connect(client, setup.accounts[1])
    await join(bob, setup.room_id)
    start = await receive(bob, "ai.start")
    full = await receive(bob, "ai.delta")
    assert full["full"] is True and full["gen"] == start["gen"]
    assert full["text"].startswith("t0 t1 t2 t3 t4 ")
    rest = await answer(bob)
    stored = next(f for f in rest if f["type"] == "message")
    assert full["text"] + deltas(rest) == stored["body"]


async def test_prompts_queue_behind_the_running_generation_and_overflow_is_refused(
    ai_client, fake, database
):
    client = await ai_client(ai_queue_size=1, ai_idle_timeout=5.0)
    fake.script(scripts.tokens(10, 20), scripts.reply("second"))
    setup, (alice,) = await ready_room(client, database, 1)
    await prompt(alice, setup.room_id, "one")
    await receive(alice, "ai.start")
    await prompt(alice, setup.room_id, "two")
    await prompt(alice, setup.room_id, "three", id="t")
    refused = await receive(alice, "error")
    assert refused["code"] == "rate_limited" and refused["re"] == "t"
    first = await answer(alice)
    assert first[-1]["type"] == "ai.end"
    second = await answer(alice)
    assert second[0]["type"] == "ai.start" and second[0]["reply_to"] == 2
    assert deltas(second) == "second"
    assert len(fake.requests) == 2


@pytest.mark.parametrize(
    ("script", "code"),
    [
        (scripts.http_error(429), "rate_limited"),
        (scripts.http_error(503), "unavailable"),
        (scripts.blocked_prompt(), "blocked"),
        (scripts.error_mid_stream("par", "tial"), "unavailable"),
        (scripts.stall("Hel", "lo", seconds=3.0), "stalled"),
        (scripts.slow_first_token(3.0, "late"), "stalled"),
    ],
)
async def test_provider_failures_end_in_a_typed_ai_error(ai_client, fake, database, script, code):
    client = await ai_client()
    fake.script(script)
    setup, (alice,) = await ready_room(client, database, 1)
    await prompt(alice, setup.room_id)
    frames = await answer(alice)
    assert frames[0]["type"] == "ai.start"
    assert frames[-1]["type"] == "ai.error" and frames[-1]["code"] == code
    assert frames[-1]["gen"] == frames[0]["gen"]
    await alice.send_json({"type": "send", "room": setup.room_id, "body": "chat goes on"})
    assert (await receive(alice, "ack"))["seq"] == 2


@pytest.mark.parametrize(
    ("script", "finish", "text"),
    [
        (scripts.empty_max_tokens(), "length", ""),
        (scripts.safety_finish("I will not"), "safety", "I will not"),
    ],
)
async def test_unusual_finishes_end_in_ai_end(ai_client, fake, database, script, finish, text):
    client = await ai_client()
    fake.script(script)
    setup, (alice,) = await ready_room(client, database, 1)
    await prompt(alice, setup.room_id)
    frames = await answer(alice)
    assert frames[-1]["type"] == "ai.end" and frames[-1]["finish"] == finish
    assert next(f for f in frames if f["type"] == "message")["body"] == text


async def test_the_circuit_breaker_opens_then_closes_after_a_good_probe(ai_client, fake, database):
    client = await ai_client(ai_breaker_failures=2, ai_breaker_cooldown=0.5)
    fake.script(scripts.http_error(503), scripts.http_error(503))
    setup, (alice,) = await ready_room(client, database, 1)
    for _ in range(2):
        await prompt(alice, setup.room_id)
        assert (await answer(alice))[-1]["code"] == "unavailable"
    assert client.app[LLM_KEY].breaker_state == "open"
    await prompt(alice, setup.room_id)
    assert (await answer(alice))[-1]["code"] == "unavailable"
    assert len(fake.requests) == 2, "an open breaker sends nothing upstream"
    await asyncio.sleep(0.6)
    await prompt(alice, setup.room_id)
    assert (await answer(alice))[-1]["type"] == "ai.end"
    assert client.app[LLM_KEY].breaker_state == "closed"
    assert len(fake.requests) == 3


async def test_the_21st_prompt_of_a_basic_user_is_refused_while_pro_goes_on(
    ai_client, fake, database
):
    client = await ai_client()
    basic, (alice,) = await ready_room(client, database, 1)
    pro, (bob,) = await ready_room(client, database, 1)
    async with database.sessions.begin() as session:
        session.add(Subscription(team_id=pro.team_id, plan="pro", status="active"))
    for _ in range(20):
        await prompt(alice, basic.room_id)
        assert (await answer(alice))[-1]["type"] == "ai.end"
    await prompt(alice, basic.room_id, id="21st")
    refused = await receive(alice, "error")
    assert refused["code"] == "quota_exceeded" and refused["re"] == "21st"
    assert refused["room"] == basic.room_id and isinstance(refused["seq"], int)  # stored
    upstream = len(fake.requests)
    for _ in range(21):
        await prompt(bob, pro.room_id)
        assert (await answer(bob))[-1]["type"] == "ai.end"
    assert len(fake.requests) == upstream + 21
    usage = await client.get("/api/v1/usage", headers=basic.accounts[0].headers)
    assert (await usage.json())["ai_prompts_today"] == 20


async def test_without_a_key_the_offline_model_answers(make_client, database):
    client = await make_client(ai_offline_delay=0.0)
    setup, (alice,) = await ready_room(client, database, 1)
    await prompt(alice, setup.room_id, "is anyone there?")
    frames = await answer(alice)
    assert frames[0]["model"] == "roomcast-offline"
    stored = next(f for f in frames if f["type"] == "message")
    assert "is anyone there?" in stored["body"]
    assert deltas(frames) == stored["body"]
    assert len([f for f in frames if f["type"] == "ai.delta"]) > 3
