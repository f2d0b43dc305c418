"""A team on an app wired to the local fake of the Stripe API, and helpers to pay and notify.

`shop` is a team ("Crew") of an owner, an admin and a member, plus an outsider, all signed
up through the API of an app whose Stripe settings point at `stripe` (tests/fakes).
Webhooks are signed with the stripe SDK's own `WebhookSignature.generate_signature_header`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
import stripe
from sqlalchemy import func, select

from server.config import Settings
from server.state import JOBS, QUOTAS
from storage import subscriptions
from storage.db import Database
from storage.models import StripeEvent, Subscription, Team
from tests.accounts import Account, ActsAs, four_roles
from tests.fakes.stripe_api import FakeStripe, event

API = "/api/v1"
WEBHOOK_SECRET = "whsec_test"
CALLERS = ("owner", "admin", "member", "outsider", "anonymous")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Rate limits out of the way: these tests sign up several users each."""
    return replace(settings, auth_rate_limit=100_000)


@pytest.fixture
async def stripe_api() -> AsyncIterator[FakeStripe]:
    fake = FakeStripe()
    await fake.start()
    yield fake
    await fake.stop()


def stripe_settings(fake: FakeStripe) -> dict[str, Any]:
    return {
        "stripe_secret_key": "sk_test_x",
        "stripe_api_base": fake.url,
        "stripe_price_pro": "price_pro",
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "public_url": "https://roomcast.test",
    }


def signed(payload: str, *, secret: str = WEBHOOK_SECRET, age: int = 0) -> dict[str, str]:
    """A `Stripe-Signature` header for `payload`, made `age` seconds ago."""
    timestamp = int(time.time()) - age
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp)
    return {"Stripe-Signature": header, "Content-Type": "application/json"}


@dataclass
class Shop(ActsAs):
    """A team on a Stripe-enabled app, its people, and the fake Stripe behind it."""

    client: Any
    database: Database
    stripe: FakeStripe
    owner: Account
    admin: Account
    member: Account
    outsider: Account
    team_id: str

    async def subscription(self, team_id: str | None = None) -> dict[str, Any]:
        response = await self.call("GET", f"/teams/{team_id or self.team_id}/subscription")
        assert response.status == 200, await response.text()
        return dict(await response.json())

    async def deliver(self, body: dict[str, Any], **signing: Any) -> Any:
        """POST the event to the webhook, signed, and wait for the jobs it started."""
        payload = json.dumps(body)
        response = await self.client.post(
            f"{API}/webhooks/stripe", data=payload, headers=signed(payload, **signing)
        )
        await self.settle()
        return response

    async def settle(self) -> None:
        """Wait for every background job (mail, announcements) to finish."""
        await asyncio.gather(*(job.wait() for job in list(self.client.app[JOBS])))

    def subscribe(self, *, status: str = "active", team_id: str | None = None) -> dict[str, Any]:
        """A customer and subscription for the team in the fake; returns the subscription."""
        team_id = team_id or self.team_id
        customer = self.stripe.add_customer(f"billing-{team_id[:8]}@example.com")
        return self.stripe.add_subscription(customer, team_id=team_id, status=status)

    def checkout_completed(self, sub: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """The `checkout.session.completed` event that created `sub`."""
        session = {
            "id": f"cs_test_for_{sub['id']}",
            "object": "checkout.session",
            "mode": "subscription",
            "status": "complete",
            "client_reference_id": sub["metadata"].get("team_id"),
            "customer": sub["customer"],
            "subscription": sub["id"],
            "metadata": {},
        }
        return event("checkout.session.completed", session, **kwargs)

    async def pay(self, team_id: str | None = None) -> dict[str, Any]:
        """Make the team pro: a subscription in the fake and its checkout webhook applied."""
        sub = self.subscribe(team_id=team_id)
        response = await self.deliver(self.checkout_completed(sub))
        assert response.status == 200, await response.text()
        return sub

    @property
    def quotas(self) -> Any:
        return self.client.app[QUOTAS]


@pytest.fixture
async def shop(make_client, database: Database, stripe_api: FakeStripe) -> Shop:
    client = await make_client(**stripe_settings(stripe_api))
    owner, admin, member, outsider, team_id = await four_roles(client, database)
    return Shop(client, database, stripe_api, owner, admin, member, outsider, team_id)


async def billing_rows(database: Database) -> dict[str, Any]:
    """What billing has stored: to show that a refused request changed nothing."""
    async with database.sessions() as session:
        events = await session.scalar(select(func.count()).select_from(StripeEvent))
        subs = await session.scalar(select(func.count()).select_from(Subscription))
        customers = await session.scalar(
            select(func.count()).select_from(Team).where(Team.stripe_customer_id.is_not(None))
        )
    return {"stripe_events": events, "subscriptions": subs, "customers": customers}


async def stored(database: Database, team_id: str) -> subscriptions.SubscriptionRecord | None:
    async with database.sessions() as session:
        return await subscriptions.get(session, team_id)


async def error_code(response: Any) -> str:
    return str((await response.json())["error"]["code"])
