"""The assistant in the chat screen: its answer streams in, and Stop ends it as cancelled.

The instance here answers with the offline model at a slow word rate, so that the answer
is still running when the test has watched it grow and clicks Stop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect
from redis.asyncio import Redis

from storage.db import Database
from tests.instances import launched
from tests.web.conftest import AppServer, NewPage, SignedUp
from tests.web.test_chat_steps import (
    ada_and_bob_in_a_team,
    create_room,
    open_room,
    open_team,
    rest_login,
    say,
    shown_messages,
)

STREAMING = ".chat-msg.streaming .chat-body"


@pytest.fixture
async def app_server(
    database: Database, redis: Redis, database_url: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[AppServer]:
    async with launched(database_url, redis_url, tmp_path / "instances") as factory:
        group = await factory(1, AI_PROVIDER="offline", AI_OFFLINE_DELAY="0.2")
        yield AppServer(group[0], database)


async def grown_past(page: Page, length: int) -> str:
    """The streaming answer's text once it is longer than `length` characters."""
    await page.wait_for_function(
        "([selector, n]) => (document.querySelector(selector)?.textContent.length ?? 0) > n",
        arg=[STREAMING, length],
    )
    text: str = await page.locator(STREAMING).text_content() or ""
    return text


async def test_an_answer_streams_in_and_stop_ends_it_as_cancelled_and_stored(
    app_server: AppServer, new_page: NewPage, signed_up: SignedUp, screenshots_dir: Path
) -> None:
    page = await new_page()
    ada = await signed_up(page, "Ada")
    room_id = await create_room(page, "ask")  # a personal team's rooms answer every message
    await expect(page.get_by_text("The assistant answers every message.")).to_be_visible()
    await say(page, "Could you explain how streaming answers reach this room?")

    seen = [await grown_past(page, 0)]
    for _ in range(3):
        seen.append(await grown_past(page, len(seen[-1])))
    await page.screenshot(path=screenshots_dir / "chat-streaming.png")
    await page.get_by_role("button", name="Stop").click()

    answer = page.locator(".chat-msg.assistant")
    await expect(answer.locator(".chat-note")).to_have_text("stopped")
    await expect(page.locator(".chat-msg.streaming")).to_have_count(0)
    await expect(page.get_by_role("button", name="Stop")).to_have_count(0)
    shown = await shown_messages(page)
    assert [m["seq"] for m in shown] == [1, 2]
    # Each delta appended to what was there: every sighting extends the one before.
    for shorter, longer in zip(seen, seen[1:], strict=False):
        assert longer.startswith(shorter) and len(longer) > len(shorter)

    client, headers = await rest_login(app_server, ada)
    history = await client.get(f"/api/v1/rooms/{room_id}/messages", headers=headers)
    stored = (await history.json())["items"][-1]
    assert stored["author"]["kind"] == "assistant"
    assert stored["finish"] == "cancelled"
    assert stored["seq"] == 2
    assert stored["body"] == shown[-1]["body"]
    assert stored["body"].startswith(seen[-1])


async def test_a_member_who_opens_the_room_mid_answer_sees_the_text_so_far_grow(
    app_server: AppServer, new_page: NewPage, signed_up: SignedUp
) -> None:
    ada_page, bob_page, ada, _bob, team_id = await ada_and_bob_in_a_team(
        app_server, new_page, signed_up
    )
    await create_room(ada_page, "live", assistant="Every message")
    await say(ada_page, "Please describe the weather on the coast today.")
    started = await grown_past(ada_page, 0)

    await open_team(bob_page, team_id)
    await open_room(bob_page, "live")
    # The join brings the answer so far in one piece; live deltas extend it.
    so_far = await grown_past(bob_page, len(started) - 1)
    assert so_far.startswith("(offline model)")
    assert (await grown_past(bob_page, len(so_far))).startswith(so_far)
    # Only the prompt's author (or a team admin) may stop it.
    await expect(bob_page.get_by_role("button", name="Stop")).to_have_count(0)
    await ada_page.get_by_role("button", name="Stop").click()

    for page in (ada_page, bob_page):
        await expect(page.locator(".chat-msg.assistant .chat-note")).to_have_text("stopped")
    ada_sees, bob_sees = await shown_messages(ada_page), await shown_messages(bob_page)
    assert [(m["seq"], m["body"]) for m in ada_sees] == [(m["seq"], m["body"]) for m in bob_sees]
