"""Signing up, in and out in the browser: the app's shell around a real instance."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from playwright.async_api import Page, expect

from storage import outbox
from tests.web.conftest import LOGIN_URL, ROOMS_URL, AppServer, NewPage, SignedUp


async def test_a_new_user_signs_up_lands_in_the_rooms_logs_out_and_back_in(
    new_page: NewPage, signed_up: SignedUp, screenshots_dir: Path
) -> None:
    page = await new_page()
    await page.goto("/")
    await expect(page).to_have_url(LOGIN_URL)
    await page.screenshot(path=screenshots_dir / "login.png", full_page=True)
    await page.goto("/#/signup")
    await page.screenshot(path=screenshots_dir / "signup.png", full_page=True)

    account = await signed_up(page, "Ada")
    await page.get_by_role("button", name="Log out", exact=True).click()
    await expect(page).to_have_url(LOGIN_URL)
    await page.get_by_label("Email", exact=True).fill(account.email)
    await page.get_by_label("Password", exact=True).fill("Wrong-password-1")
    await page.get_by_role("button", name="Log in", exact=True).click()
    await expect(page.get_by_role("alert").filter(has_text="password")).to_be_visible()

    await page.get_by_label("Password", exact=True).fill(account.password)
    await page.get_by_role("button", name="Log in", exact=True).click()
    await expect(page).to_have_url(ROOMS_URL)
    navigation = page.get_by_role("navigation", name="Main")
    await expect(navigation.get_by_role("link", name="Rooms")).to_have_attribute(
        "aria-current", "page"
    )
    await expect(navigation.locator("[aria-current]")).to_have_count(1)
    await page.reload()  # the sign-in is kept in localStorage
    await expect(page).to_have_url(ROOMS_URL)
    await expect(navigation.get_by_role("button", name="Log out", exact=True)).to_be_visible()


async def test_log_out_everywhere_ends_the_sign_in_of_another_browser(
    new_page: NewPage, signed_up: SignedUp
) -> None:
    here = await new_page()
    account = await signed_up(here, "Linus")
    there = await new_page()
    await log_in(there, account.email, account.password)

    await here.get_by_role("link", name="Account").click()
    await here.get_by_role("button", name="Log out everywhere").click()
    await expect(here).to_have_url(LOGIN_URL)
    # The other browser's socket is closed and its refresh token refused: back to login.
    await expect(there).to_have_url(LOGIN_URL)
    await expect(there.get_by_role("status").filter(has_text="sign-in has ended")).to_be_visible()
    assert await there.evaluate("localStorage.getItem('roomcast.tokens')") is None

    # A kept sign-in whose refresh token is refused is forgotten on the next visit.
    await here.evaluate(STALE_SIGN_IN)
    await here.reload()
    await expect(here.get_by_role("status").filter(has_text="sign-in has ended")).to_be_visible()
    assert await here.evaluate("localStorage.getItem('roomcast.tokens')") is None


# An access token that expired long ago (only its `exp` is read) and a spent refresh token.
STALE_SIGN_IN = """
const claims = btoa(JSON.stringify({ exp: 1 })).replace(/=+$/, "");
localStorage.setItem("roomcast.tokens", JSON.stringify({
  access_token: `e30.${claims}.x`, refresh_token: "spent", token_type: "bearer", expires_in: 900,
}));
"""


async def test_a_password_change_and_a_rename_take_effect_at_the_next_login(
    new_page: NewPage, signed_up: SignedUp
) -> None:
    page = await new_page()
    account = await signed_up(page, "Barbara")
    await page.get_by_role("link", name="Account").click()
    form = page.get_by_role("form", name="Change password")
    await form.get_by_label("Current password").fill("not-my-password")
    await form.get_by_label("New password").fill("Another-Horse-43")
    await form.get_by_role("button", name="Change password").click()
    await expect(form.get_by_role("alert")).to_be_visible()
    await form.get_by_label("Current password").fill(account.password)
    await form.get_by_role("button", name="Change password").click()
    await expect(form.get_by_role("status")).to_contain_text("Password changed")

    rename = page.get_by_role("form", name="Your name")
    await rename.get_by_label("Name").fill("Barbara L.")
    await rename.get_by_role("button", name="Rename").click()
    await expect(rename.get_by_role("status")).to_contain_text("Name saved")

    await page.get_by_role("button", name="Log out", exact=True).click()
    await log_in(page, account.email, "Another-Horse-43")
    await page.get_by_role("link", name="Account").click()
    await expect(page.get_by_role("form", name="Your name").get_by_label("Name")).to_have_value(
        "Barbara L."
    )


async def test_a_one_time_code_by_email_logs_in(
    new_page: NewPage, signed_up: SignedUp, app_server: AppServer
) -> None:
    page = await new_page()
    account = await signed_up(page, "Katherine")
    await page.get_by_role("button", name="Log out", exact=True).click()

    form = page.get_by_role("form", name="Log in with a one-time code")
    await form.get_by_label("Email for a one-time code").fill(account.email)
    await form.get_by_role("button", name="Email me a code").click()
    await expect(form.get_by_role("status")).to_contain_text("code is on its way")
    await form.get_by_label("One-time code", exact=True).fill("000000")
    await form.get_by_role("button", name="Log in with the code").click()
    await expect(form.get_by_role("alert")).to_be_visible()

    code = await mailed_code(app_server, account.email)
    await form.get_by_label("One-time code", exact=True).fill(code)
    await form.get_by_role("button", name="Log in with the code").click()
    await expect(page).to_have_url(ROOMS_URL)


async def log_in(page: Page, email: str, password: str) -> None:
    await page.goto("/#/login")
    await page.get_by_label("Email", exact=True).fill(email)
    await page.get_by_label("Password", exact=True).fill(password)
    await page.get_by_role("button", name="Log in", exact=True).click()
    await expect(page).to_have_url(ROOMS_URL)


async def mailed_code(app_server: AppServer, email: str) -> str:
    """The six-digit code of the newest mail to `email` (the dev outbox is a table)."""
    async with asyncio.timeout(5):
        while True:
            async with app_server.database.sessions() as session:
                sent = await outbox.list_for(session, email)
            if sent and (found := re.search(r"\b([0-9]{6})\b", sent[-1].body)):
                return found.group(1)
            await asyncio.sleep(0.05)


async def test_a_server_restart_shows_reconnecting_until_the_socket_is_back(
    new_page: NewPage,
    signed_up: SignedUp,
    app_server: AppServer,
    allowed_console: list[re.Pattern[str]],
) -> None:
    # While the server is down the browser reports each refused connection attempt and
    # each request the chat had in flight.
    allowed_console.append(re.compile(r"^WebSocket connection to '\S+/ws' failed"))
    allowed_console.append(re.compile(r"^Failed to load resource: net::ERR_"))
    page = await new_page()
    await signed_up(page, "Margaret")
    assert await client_state(page) == "open"  # the same-origin policy let the socket through
    banner = page.get_by_role("status").filter(has_text="Reconnecting…")
    await expect(banner).to_be_hidden()

    await app_server.restart()
    await expect(banner).to_be_visible()
    await expect(banner).to_be_hidden(timeout=20_000)
    assert await client_state(page) == "open"


async def client_state(page: Page) -> str:
    return str(await page.evaluate("import('/app/api.js').then((m) => m.session.client.state)"))
