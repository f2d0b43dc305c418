"""Signing up, in and out in the browser: the app's shell around a real instance."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import expect

from tests.web.conftest import LOGIN_URL, ROOMS_URL, NewPage, SignedUp


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
    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(LOGIN_URL)
    await page.get_by_label("Email", exact=True).fill(account.email)
    await page.get_by_label("Password", exact=True).fill("Wrong-password-1")
    await page.get_by_role("button", name="Log in", exact=True).click()
    await expect(page.get_by_role("alert").filter(has_text="password")).to_be_visible()

    await page.get_by_label("Password", exact=True).fill(account.password)
    await page.get_by_role("button", name="Log in", exact=True).click()
    await expect(page).to_have_url(ROOMS_URL)
    await expect(page.get_by_role("link", name="Account")).to_be_visible()
