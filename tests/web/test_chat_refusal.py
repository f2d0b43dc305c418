"""A message the assistant will not answer (the daily allowance is used up) is still shown
as stored, and the room says why no answer comes.
"""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.web.conftest import NewPage, SignedUp
from tests.web.test_chat_steps import create_room, say, shown_messages


@pytest.fixture
def app_env() -> dict[str, str]:
    return {"PLAN_BASIC_DAILY_AI_PROMPTS": "0"}  # every prompt is over the allowance


async def test_a_prompt_over_the_allowance_is_stored_and_the_room_says_no_answer_comes(
    new_page: NewPage, signed_up: SignedUp
) -> None:
    page = await new_page()
    await signed_up(page, "Ada")
    await create_room(page, "ask")  # a personal team's rooms answer every message
    await say(page, "Will anyone answer this?")

    await expect(page.get_by_role("alert").filter(has_text="will not answer")).to_contain_text(
        "The assistant will not answer"
    )
    shown = await shown_messages(page)
    assert [(m["seq"], m["body"]) for m in shown] == [(1, "Will anyone answer this?")]
    await expect(page.locator(".chat-msg.streaming")).to_have_count(0)
