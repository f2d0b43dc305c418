"""Steps the chat's browser tests share (no tests here): REST set-up, rooms made in the UI.

The REST parts are set-up only (what the test is not about); every step a test is about
goes through the page.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from playwright.async_api import Page, expect

from tests.instances import InstanceClient
from tests.web.conftest import AppServer, NewPage, SignedUp, WebAccount

ROOM_URL = re.compile(r"#/teams/[^/]+/rooms/([^/]+)$")


async def rest_login(
    app_server: AppServer, account: WebAccount
) -> tuple[InstanceClient, dict[str, str]]:
    """A REST client on the instance and the account's authorization headers."""
    client = app_server.instance.client()
    answer = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    assert answer.status == 200, await answer.text()
    tokens = await answer.json()
    return client, {"Authorization": f"Bearer {tokens['access_token']}"}


async def team_of(app_server: AppServer, owner: WebAccount, *members: WebAccount) -> str:
    """A new team "Crew" of `owner`, with `members` invited and accepted; its id."""
    client, headers = await rest_login(app_server, owner)
    made = await client.post("/api/v1/teams", json={"name": "Crew"}, headers=headers)
    assert made.status == 201, await made.text()
    team_id: str = (await made.json())["id"]
    for member in members:
        invited = await client.post(
            f"/api/v1/teams/{team_id}/invitations", json={"email": member.email}, headers=headers
        )
        assert invited.status == 201, await invited.text()
        token = (await invited.json())["token"]
        theirs, their_headers = await rest_login(app_server, member)
        accepted = await theirs.post(f"/api/v1/invitations/{token}/accept", headers=their_headers)
        assert accepted.status == 200, await accepted.text()
    return team_id


class TwoMembers(NamedTuple):
    ada_page: Page
    bob_page: Page
    ada: WebAccount
    bob: WebAccount
    team_id: str


async def ada_and_bob_in_a_team(
    app_server: AppServer, new_page: NewPage, signed_up: SignedUp
) -> TwoMembers:
    """Ada and Bob signed up, each in a page, in Ada's team; Ada's page shows the team."""
    ada_page, bob_page = await new_page(), await new_page()
    ada = await signed_up(ada_page, "Ada")
    bob = await signed_up(bob_page, "Bob")
    team_id = await team_of(app_server, ada, bob)
    await open_team(ada_page, team_id)
    return TwoMembers(ada_page, bob_page, ada, bob, team_id)


async def open_team(page: Page, team_id: str) -> None:
    """Show the team's rooms; the reload makes the app read the teams joined over REST."""
    await page.goto(f"/#/teams/{team_id}/rooms")
    await page.reload()
    await expect(page.get_by_role("navigation", name="Rooms")).to_be_visible()


async def create_room(page: Page, name: str, assistant: str | None = None) -> str:
    """Create a room through the "New room" form; returns its id once it is open."""
    await page.get_by_text("New room", exact=True).click()
    form = page.get_by_role("form", name="New room")
    await form.get_by_label("Room name").fill(name)
    if assistant is not None:
        await form.get_by_label("Assistant answers").select_option(label=assistant)
    await form.get_by_role("button", name="Create room").click()
    await expect(page).to_have_url(ROOM_URL)
    await expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
    match = ROOM_URL.search(page.url)
    assert match is not None
    return match.group(1)


async def open_room(page: Page, name: str) -> None:
    await page.get_by_role("navigation", name="Rooms").get_by_role("link", name=name).click()
    await expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()


async def say(page: Page, body: str) -> None:
    """Type `body` into the composer and press Enter."""
    composer = page.get_by_label("Message", exact=True)
    await composer.fill(body)
    await composer.press("Enter")


async def shown_messages(page: Page) -> list[dict[str, Any]]:
    """Every message bubble in the log, in page order: seq (or None), body, classes."""
    shown: list[dict[str, Any]] = await page.evaluate(
        """() => [...document.querySelectorAll('[role=log] .chat-msg')].map((el) => ({
            seq: el.dataset.seq === undefined ? null : Number(el.dataset.seq),
            body: el.querySelector('.chat-body').textContent,
            note: el.querySelector('.chat-note').textContent,
            classes: el.className,
        }))"""
    )
    return shown


def bodies(shown: list[dict[str, Any]]) -> list[str]:
    return [message["body"] for message in shown]
