"""What Roomcast needs from its payment provider, as a small interface (`Billing`).

`StripeBilling` (server/billing/stripe_billing.py) implements it on the stripe SDK; tests
drive that implementation against a local fake of the Stripe API. Subscriptions come back
as `StripeSubscription` records, parsed here from Stripe's JSON so that the rest of the
code never handles SDK objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class StripeSubscription:
    """A Stripe subscription, reduced to what decides a team's plan."""

    id: str
    customer_id: str | None
    status: str
    current_period_end: datetime | None
    cancel_at_period_end: bool
    created: int
    team_id: str | None  # from metadata.team_id, set at checkout

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StripeSubscription:
        """Parse a subscription object; `current_period_end` is read from the subscription
        (API versions before 2025-03-31) or from its items (later versions)."""
        metadata = data.get("metadata") or {}
        team_id = metadata.get("team_id") if isinstance(metadata, Mapping) else None
        return cls(
            id=str(data["id"]),
            customer_id=object_id(data.get("customer")),
            status=str(data.get("status") or "incomplete"),
            current_period_end=_period_end(data),
            cancel_at_period_end=bool(data.get("cancel_at_period_end")),
            created=int(data.get("created") or 0),
            team_id=team_id if isinstance(team_id, str) else None,
        )


def object_id(value: object) -> str | None:
    """The id of a Stripe reference, which is an id string or, when expanded, an object."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def _period_end(data: Mapping[str, Any]) -> datetime | None:
    ends = [data.get("current_period_end")]
    items = data.get("items")
    if isinstance(items, Mapping):
        ends += [item.get("current_period_end") for item in items.get("data") or ()]
    stamps = [end for end in ends if isinstance(end, int) and not isinstance(end, bool)]
    return datetime.fromtimestamp(max(stamps), UTC) if stamps else None


class Billing(Protocol):
    """The payment provider's side of billing: sessions to redirect to, subscription state.

    Every method raises `Unavailable` when the provider cannot be reached or fails, and
    `Invalid` when it refuses the request.
    """

    async def checkout_url(
        self, *, team_id: str, customer_id: str | None, email: str | None
    ) -> str:
        """A Checkout Session for the pro plan: the URL to send the buyer to."""
        ...

    async def portal_url(self, *, team_id: str, customer_id: str) -> str:
        """A Billing Portal session where the customer manages payment and cancels."""
        ...

    async def subscription(self, subscription_id: str) -> StripeSubscription | None:
        """The subscription as the provider has it now; None when it does not know it."""
        ...

    async def subscriptions_of(self, customer_id: str) -> list[StripeSubscription]:
        """Every subscription of the customer, ended ones included."""
        ...

    async def close(self) -> None: ...
