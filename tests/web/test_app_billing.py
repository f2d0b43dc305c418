"""Billing in the browser against a local Stripe API: the upgrade button sends the browser
to the checkout page the server made, and Stripe's way back lands on the team's billing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Route, expect

from tests.fakes.stripe_api import FakeStripe
from tests.web.conftest import AppServer, NewPage, SignedUp

CHECKOUT = "https://checkout.stripe.test"


@pytest.fixture
async def stripe_api() -> AsyncIterator[FakeStripe]:
    fake = FakeStripe()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def app_env(stripe_api: FakeStripe) -> dict[str, str]:
    return {
        "STRIPE_SECRET_KEY": "sk_test_x",
        "STRIPE_PRICE_PRO": "price_pro",
        "STRIPE_API_BASE": stripe_api.url,
    }


async def test_upgrading_goes_to_stripe_checkout_and_comes_back_to_the_teams_billing(
    new_page: NewPage,
    signed_up: SignedUp,
    app_server: AppServer,
    stripe_api: FakeStripe,
    foreign_origins: list[str],
) -> None:
    foreign_origins.append(CHECKOUT)
    page = await new_page()

    async def stripe_page(route: Route) -> None:
        await route.fulfill(content_type="text/html", body="<title>Checkout</title>")

    await page.route(f"{CHECKOUT}/**", stripe_page)
    await signed_up(page, "Dorothy")
    await page.get_by_role("link", name="Billing").click()
    await page.get_by_role("button", name="Upgrade to Pro").click()
    await expect(page).to_have_url(re.compile(rf"^{re.escape(CHECKOUT)}/c/pay/\w+"))

    [created] = stripe_api.requests_to("POST", "/v1/checkout/sessions")
    back = created.form["success_url"].replace("{CHECKOUT_SESSION_ID}", "cs_1")
    assert back.startswith(f"{app_server.url}/teams/")
    await page.goto(back)
    await expect(page).to_have_url(re.compile(r"/#/billing/[^/]+$"))
    await expect(page.get_by_role("status")).to_contain_text("your payment went through")
    await expect(page.get_by_role("heading", name="Billing: Dorothy's team")).to_be_visible()
