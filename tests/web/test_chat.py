"""The chat screen in a real browser: two people talk, a restart loses nothing, history pages.

Each test drives Chromium against a real instance (tests/web/conftest.py); any console
error or Content-Security-Policy violation fails it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from storage.message_records import Author
from tests import seed
from tests.web.conftest import AppServer, NewPage, SignedUp
from tests.web.test_chat_steps import (
    ada_and_bob_in_a_team,
    bodies,
    create_room,
    open_room,
    open_team,
    rest_login,
    say,
    shown_messages,
)

# While the server is down the browser reports each refused reconnection attempt, and an
# attempt the stopping or starting server cut off in its handshake.
REFUSED = re.compile(
    r"^WebSocket connection to '\S+/ws' failed: "
    r"(Error in connection establishment: net::ERR_CONNECTION_REFUSED"
    r"|Error during WebSocket handshake: net::ERR_CONNECTION_RESET)$"
)


async def expect_once_each(page: Page, expected: list[str]) -> None:
    """The log shows exactly `expected`, in this order, each once, under increasing seqs."""
    log = page.get_by_role("log", name="Messages")
    await expect(log.locator(".chat-msg[data-seq]")).to_have_count(len(expected))
    await expect(log.locator(".chat-msg.pending")).to_have_count(0)
    shown = await shown_messages(page)
    assert bodies(shown) == expected
    seqs = [message["seq"] for message in shown]
    assert seqs == sorted(set(seqs)), seqs


async def test_two_members_chat_in_a_room_and_see_presence_typing_and_unread_counts(
    app_server: AppServer, new_page: NewPage, signed_up: SignedUp, screenshots_dir: Path
) -> None:
    ada_page, bob_page, ada, _bob, team_id = await ada_and_bob_in_a_team(
        app_server, new_page, signed_up
    )
    await create_room(ada_page, "random", assistant="Off")
    await create_room(ada_page, "lobby", assistant="Off")
    await open_team(bob_page, team_id)
    await open_room(bob_page, "lobby")

    await expect(ada_page.get_by_label("Online in this room")).to_have_text(
        "Online: Ada (you), Bob"
    )
    await ada_page.get_by_label("Message", exact=True).press_sequentially("Hel")
    await expect(bob_page.get_by_text("Ada is typing…")).to_be_visible()
    await say(ada_page, "Hello Bob, welcome to the lobby.")
    await expect(bob_page.get_by_role("log").get_by_text("Hello Bob, welcome")).to_be_visible()
    composer = bob_page.get_by_label("Message", exact=True)
    await composer.press_sequentially("Thanks Ada!")
    await composer.press("Shift+Enter")  # a new line, not a send
    await composer.press_sequentially("Glad to be here.")
    await composer.press("Enter")
    await expect(ada_page.get_by_role("log").get_by_text("Glad to be here.")).to_be_visible()

    conversation = ["Hello Bob, welcome to the lobby.", "Thanks Ada!\nGlad to be here."]
    await expect_once_each(ada_page, conversation)
    await expect_once_each(bob_page, conversation)
    assert "Bob" in (await ada_page.locator(".chat-msg.theirs .chat-author").all_inner_texts())

    # A message in a room Bob does not have open counts as unread there until he opens it.
    await open_room(ada_page, "random")
    await say(ada_page, "Over here too.")
    random = bob_page.get_by_role("navigation", name="Rooms").get_by_role("link", name="random")
    await expect(random).to_have_accessible_name("random, 1 unread")
    await open_room(bob_page, "random")
    await expect(random).to_have_accessible_name("random")
    await expect_once_each(bob_page, ["Over here too."])

    await open_room(bob_page, "lobby")
    await expect_once_each(bob_page, conversation)
    await say(ada_page, "One more over here.")
    await expect(random).to_have_accessible_name("random, 1 unread")
    await bob_page.screenshot(path=screenshots_dir / "chat.png")
    await bob_page.emulate_media(color_scheme="dark")
    await bob_page.screenshot(path=screenshots_dir / "chat-dark.png")
    await bob_page.emulate_media(color_scheme="light")
    await bob_page.set_viewport_size({"width": 390, "height": 844})
    await expect(bob_page.get_by_role("log", name="Messages")).to_be_visible()
    await bob_page.screenshot(path=screenshots_dir / "chat-phone.png")
    await bob_page.get_by_role("link", name="‹ Rooms").click()
    await expect(random).to_be_visible()
    await bob_page.screenshot(path=screenshots_dir / "chat-phone-rooms.png")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("allowed_console", [[REFUSED]])
async def test_a_server_restart_mid_conversation_shows_every_message_exactly_once(
    app_server: AppServer, new_page: NewPage, signed_up: SignedUp
) -> None:
    ada_page, bob_page, ada, _bob, team_id = await ada_and_bob_in_a_team(
        app_server, new_page, signed_up
    )
    await create_room(ada_page, "lobby", assistant="Off")
    await open_team(bob_page, team_id)
    await open_room(bob_page, "lobby")
    await say(ada_page, "before 1")
    await say(bob_page, "before 2")
    await expect_once_each(ada_page, ["before 1", "before 2"])

    # Rooms are not announced on the websocket; the list is read again after a reconnect.
    client, headers = await rest_login(app_server, ada)
    made = await client.post(
        f"/api/v1/teams/{team_id}/rooms", json={"name": "made meanwhile"}, headers=headers
    )
    assert made.status == 201
    await app_server.instance.kill()
    banner = ada_page.get_by_role("status").filter(has_text="Reconnecting")
    await expect(banner).to_be_visible()
    bob_banner = bob_page.get_by_role("status").filter(has_text="Reconnecting")
    await expect(bob_banner).to_be_visible()
    await say(ada_page, "typed while the server was down")
    await expect(ada_page.locator(".chat-msg.pending")).to_have_count(1)
    await say(bob_page, "Bob, also while it was down")
    await app_server.instance.start()

    # Each client comes back after its own randomized backoff.
    await expect(banner).to_be_hidden(timeout=45_000)
    await expect(bob_banner).to_be_hidden(timeout=45_000)
    await expect(bob_page.get_by_role("link", name="made meanwhile")).to_be_visible()
    online = ada_page.get_by_label("Online in this room")
    await expect(online).to_contain_text("Ada (you)")
    await expect(online).to_contain_text("Bob")
    await say(bob_page, "after the restart")
    expected = [
        "before 1",
        "before 2",
        "typed while the server was down",
        "Bob, also while it was down",
        "after the restart",
    ]
    # The two sends made while down race each other when the clients come back.
    for page in (ada_page, bob_page):
        await expect(page.get_by_role("log").get_by_text("after the restart")).to_be_visible(
            timeout=45_000
        )
        shown = bodies(await shown_messages(page))
        assert sorted(shown[2:4]) == sorted(expected[2:4]), shown
        await expect_once_each(page, [*expected[:2], *shown[2:4], expected[4]])


async def test_older_history_loads_when_scrolled_to_the_top_keeping_the_place(
    app_server: AppServer, new_page: NewPage, signed_up: SignedUp
) -> None:
    page = await new_page()
    ada = await signed_up(page, "Ada")
    # Stored before any page joins the room, straight into the database: set-up only.
    client, headers = await rest_login(app_server, ada)
    me = await (await client.get("/api/v1/me", headers=headers)).json()
    teams = await (await client.get("/api/v1/teams", headers=headers)).json()
    team_id = teams["items"][0]["id"]
    made = await client.post(
        f"/api/v1/teams/{team_id}/rooms",
        json={"name": "archive", "assistant": "off"},
        headers=headers,
    )
    room_id = (await made.json())["id"]
    await seed.messages(app_server.database, room_id, Author.user(me["id"], "Ada"), 120)
    await page.goto(f"/#/teams/{team_id}/rooms/{room_id}")
    log = page.get_by_role("log", name="Messages")
    await expect(log.locator(".chat-msg")).to_have_count(50)
    await expect(log.get_by_text("m120", exact=True)).to_be_in_viewport()

    scroller = page.locator(".chat-scroll")
    await scroller.evaluate("(el) => { el.scrollTop = 0; }")
    await expect(log.locator(".chat-msg")).to_have_count(100)
    # What was at the top (m71) stays where the reader was looking.
    await expect(log.get_by_text("m71", exact=True)).to_be_in_viewport()
    await page.get_by_role("button", name="Load older messages").click()
    await expect(log.locator(".chat-msg")).to_have_count(120)
    await expect(page.get_by_role("button", name="Load older messages")).to_be_hidden()
    assert bodies(await shown_messages(page)) == [f"m{i}" for i in range(1, 121)]


async def test_an_owner_renames_switches_the_assistant_mode_and_deletes_a_room(
    app_server: AppServer, new_page: NewPage, signed_up: SignedUp
) -> None:
    ada_page, bob_page, ada, _bob, team_id = await ada_and_bob_in_a_team(
        app_server, new_page, signed_up
    )
    await create_room(ada_page, "plans", assistant="Off")
    await open_team(bob_page, team_id)
    await open_room(bob_page, "plans")
    await expect(bob_page.get_by_text("Room settings")).to_have_count(0)  # a member
    ask = ada_page.get_by_label("Ask the assistant")
    await expect(ask).to_be_hidden()

    await ada_page.get_by_text("Room settings").click()
    settings = ada_page.get_by_role("form", name="Room settings")
    await settings.get_by_label("Room name").fill("roadmap")
    await settings.get_by_label("Assistant answers").select_option(label="When asked")
    await settings.get_by_role("button", name="Save").click()
    await expect(settings.get_by_text("Saved.")).to_be_visible()
    await expect(ada_page.get_by_role("heading", name="roadmap")).to_be_visible()
    await expect(ada_page.get_by_role("link", name="roadmap")).to_be_visible()

    # In a room that answers when asked, the toggle is what asks.
    await ask.check()
    await say(ada_page, "What is on the roadmap?")
    answer = bob_page.locator(".chat-msg.assistant[data-seq='2']")
    await expect(answer.locator(".chat-author")).to_have_text("Assistant", timeout=20_000)
    await expect(answer.locator(".chat-body")).to_contain_text("roadmap")
    await expect(ask).not_to_be_checked()

    await settings.get_by_role("button", name="Delete room").click()
    await settings.get_by_role("button", name="Delete “roadmap” and its messages").click()
    await expect(ada_page.get_by_text("Choose a room, or create a new one.")).to_be_visible()
    await expect(ada_page.get_by_role("link", name="roadmap")).to_have_count(0)
    deleted = bob_page.get_by_role("status").filter(has_text="This room was deleted.")
    await expect(deleted).to_be_visible()
    await expect(bob_page.get_by_role("link", name="plans")).to_have_count(0)


async def test_a_refused_message_says_why_and_offers_retry_and_discard(
    new_page: NewPage, signed_up: SignedUp
) -> None:
    page = await new_page()
    await signed_up(page, "Ada")
    await create_room(page, "notes", assistant="Off")
    await say(page, "fine")
    # The server stores no NUL character: it refuses this one message, nothing else.
    await say(page, "not\x00storable")
    refused = page.locator(".chat-msg.failed")
    await expect(refused.get_by_role("alert")).to_contain_text("not sent")
    await expect(refused.get_by_role("button", name="Retry")).to_be_visible()
    await refused.get_by_role("button", name="Discard").click()
    await expect(refused).to_have_count(0)
    await say(page, "still here")
    await expect_once_each(page, ["fine", "still here"])
