"""Teams in the browser: create one, invite by link, accept it in another browser, manage
roles; billing without a payment provider; the admin's actor tree."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import expect
from sqlalchemy import update

from storage.models import User
from tests.web.conftest import LOGIN_URL, AppServer, NewPage, SignedUp


async def test_an_invitation_link_brings_a_second_user_into_the_team(
    new_page: NewPage, signed_up: SignedUp, screenshots_dir: Path
) -> None:
    owner = await new_page(permissions=["clipboard-read", "clipboard-write"])
    await signed_up(owner, "Ada")
    guest = await new_page()
    invitee = await signed_up(guest, "Bob")

    await owner.get_by_role("link", name="Teams").click()
    await owner.get_by_label("Team name").fill("Crew")
    await owner.get_by_role("button", name="Create team").click()
    await expect(owner.get_by_role("heading", name="Crew")).to_be_visible()
    await owner.get_by_label("Email to invite").fill(invitee.email)
    await owner.get_by_role("button", name="Create invitation").click()
    link = owner.get_by_label("Invitation link")
    await expect(link).to_have_value(re.compile(r"^http://127\.0\.0\.1:\d+/#/invite/.+"))
    await owner.get_by_role("button", name="Copy").click()
    await expect(owner.get_by_text("Copied.")).to_be_visible()
    invitation = await link.input_value()
    assert await owner.evaluate("navigator.clipboard.readText()") == invitation
    await owner.screenshot(path=screenshots_dir / "team.png", full_page=True)

    # Bob opens the link logged out: he logs in first and comes back to the invitation.
    await guest.get_by_role("button", name="Log out", exact=True).click()
    await expect(guest).to_have_url(LOGIN_URL)
    await guest.goto(invitation)
    await expect(guest).to_have_url(LOGIN_URL)
    await guest.get_by_label("Email", exact=True).fill(invitee.email)
    await guest.get_by_label("Password", exact=True).fill(invitee.password)
    await guest.get_by_role("button", name="Log in", exact=True).click()
    await guest.get_by_role("button", name="Accept invitation").click()
    await expect(guest.get_by_role("heading", name="Crew")).to_be_visible()
    await guest.get_by_role("link", name="Teams").click()
    await expect(guest.get_by_role("list", name="Your teams")).to_contain_text("Crew")
    await guest.goto(invitation)
    await guest.get_by_role("button", name="Accept invitation").click()
    await expect(guest.get_by_role("alert")).to_contain_text("not valid")

    await owner.reload()
    await owner.get_by_label("Role of Bob").select_option("admin")
    await expect(owner.get_by_role("status")).to_have_text("Bob is now admin.")
    await owner.reload()
    await expect(owner.get_by_label("Role of Bob")).to_have_value("admin")
    await owner.get_by_label("New team name").fill("Crew 2")
    await owner.get_by_role("button", name="Rename team").click()
    teams = owner.get_by_role("list", name="Your teams")
    await expect(teams).to_contain_text("Crew 2")
    await owner.screenshot(path=screenshots_dir / "teams.png", full_page=True)

    await teams.get_by_role("link", name="Crew 2").click()
    await owner.get_by_role("button", name="Delete team").click()
    await owner.get_by_role("button", name="Delete the team, its rooms and messages").click()
    await expect(teams).not_to_contain_text("Crew")


async def test_billing_without_a_payment_provider_says_so_instead_of_offering_it(
    new_page: NewPage, signed_up: SignedUp, screenshots_dir: Path
) -> None:
    page = await new_page()
    await signed_up(page, "Mary")
    await page.get_by_role("link", name="Billing").click()
    await expect(page.get_by_test_id("plan")).to_have_text("Basic")
    await expect(page.get_by_text("0 of 20 prompts")).to_be_visible()
    await expect(page.get_by_role("alert")).to_contain_text("Payments are not set up")
    await expect(page.get_by_role("button", name="Upgrade to Pro")).to_have_count(0)
    await page.screenshot(path=screenshots_dir / "billing.png", full_page=True)


async def test_an_administrator_sees_the_live_actor_tree(
    new_page: NewPage, signed_up: SignedUp, app_server: AppServer, screenshots_dir: Path
) -> None:
    page = await new_page()
    account = await signed_up(page, "Radia")
    await expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    async with app_server.database.sessions.begin() as session:
        await session.execute(update(User).where(User.email == account.email).values(role="admin"))
    await page.reload()
    await page.get_by_role("link", name="Admin").click()
    tree = page.locator(".tree")
    await expect(tree.locator(".actor").first).to_be_visible()
    await expect(tree).to_contain_text("restarts")
    updated = page.get_by_text(re.compile(r"^Updated "))
    first = await updated.inner_text()
    await expect(updated).not_to_have_text(first)  # refreshed every 2 seconds
    await expect(tree).to_contain_text("SessionActor")  # this page's own connection
    await page.screenshot(path=screenshots_dir / "admin.png", full_page=True)


async def test_the_app_reads_well_in_the_dark_and_on_a_phone(
    new_page: NewPage, signed_up: SignedUp, screenshots_dir: Path
) -> None:
    dark = await new_page(color_scheme="dark")
    await signed_up(dark, "Frances")
    await dark.get_by_role("link", name="Account").click()
    background = await dark.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(21, 23, 27)"
    await dark.screenshot(path=screenshots_dir / "account-dark.png", full_page=True)

    phone = await new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    await signed_up(phone, "Joan")
    await phone.get_by_role("link", name="Teams").click()
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "nothing scrolls sideways on a phone"
    await phone.screenshot(path=screenshots_dir / "teams-phone.png", full_page=True)
