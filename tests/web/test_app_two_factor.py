"""Two-factor authentication in the browser: the QR code holds the secret's URI, and once
it is on, logging in asks for a code from the app or a backup code."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import pyotp
import zxingcpp
from PIL import Image
from playwright.async_api import Page, expect

from tests.web.conftest import LOGIN_URL, ROOMS_URL, NewPage, SignedUp, WebAccount


async def settle_totp_step(margin: float = 3.0) -> None:
    """Wait out the end of a 30-second step, so codes for `now ± 30 s` stay valid."""
    left = 30 - time.time() % 30
    if left < margin:
        await asyncio.sleep(left + 0.05)


def totp_at(secret: str, offset_steps: int) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * offset_steps)


async def log_in(page: Page, account: WebAccount, second_factor: str) -> None:
    await page.get_by_label("Email", exact=True).fill(account.email)
    await page.get_by_label("Password", exact=True).fill(account.password)
    await page.get_by_role("button", name="Log in", exact=True).click()
    code = page.get_by_label("Authentication code or backup code").first
    await expect(code).to_be_visible()
    await code.fill(second_factor)
    await page.get_by_role("button", name="Log in", exact=True).click()
    await expect(page).to_have_url(ROOMS_URL)


async def log_out(page: Page) -> None:
    await page.get_by_role("button", name="Log out", exact=True).click()
    await expect(page).to_have_url(LOGIN_URL)


async def test_the_qr_code_holds_the_secret_and_logins_then_need_a_code_or_a_backup_code(
    new_page: NewPage, signed_up: SignedUp, screenshots_dir: Path
) -> None:
    page = await new_page()
    account = await signed_up(page, "Grace")
    await page.get_by_role("link", name="Account").click()
    await page.get_by_role("button", name="Set up two-factor authentication").click()

    qr = page.get_by_role("img", name="QR code for your authenticator app")
    await expect(qr).to_be_visible()
    uri = await page.get_by_test_id("otpauth-uri").inner_text()
    secret = await page.get_by_test_id("totp-secret").inner_text()
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(await qr.screenshot())))
    assert [barcode.text for barcode in decoded] == [uri]
    assert uri.startswith("otpauth://totp/")
    assert pyotp.parse_uri(uri).secret == secret
    await page.screenshot(path=screenshots_dir / "2fa-setup.png", full_page=True)

    await page.get_by_label("Code from the app").fill("000000")
    await page.get_by_role("button", name="Turn on").click()
    form = page.get_by_role("form", name="Turn on two-factor authentication")
    await expect(form.get_by_role("alert")).to_contain_text("wrong or already used")

    await settle_totp_step()
    await page.get_by_label("Code from the app").fill(totp_at(secret, -1))
    await page.get_by_role("button", name="Turn on").click()
    backup_codes = page.get_by_role("list", name="Backup codes").get_by_role("listitem")
    await expect(backup_codes).to_have_count(10)
    first_backup = await backup_codes.first.inner_text()
    await page.screenshot(path=screenshots_dir / "account.png", full_page=True)

    await log_out(page)
    await log_in(page, account, totp_at(secret, 0))
    await log_out(page)
    await log_in(page, account, first_backup)
    await page.get_by_role("link", name="Account").click()
    await expect(page.get_by_role("button", name="Turn off")).to_be_visible()
