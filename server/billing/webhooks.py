"""Stripe webhooks: verified on the raw body, applied once per event id, order-independent.

Every event that concerns a subscription is applied by asking Stripe for the
subscription's current state (not by trusting the copy in the event), so the result does
not depend on the order events arrive in; `reconcile.apply` keeps the newest state. The
event id is recorded in the same transaction as its effect: a redelivery changes nothing.
Mail and announcements run afterwards as background jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import stripe
from pydantic import ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from actors.requests import decode_frame
from errors import Invalid
from server.billing import reconcile
from server.billing.api import Billing, StripeSubscription, object_id
from server.billing.notices import Notices, PaymentProblem
from server.billing.reconcile import Applied
from server.config import PlanLimits
from server.http.json import Body, validate
from storage import stripe_events, subscriptions
from storage.db import Database

logger = logging.getLogger(__name__)

TOLERANCE_SECONDS = 300
Outcome = Literal["applied", "duplicate", "ignored"]

SUBSCRIPTION_EVENTS = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    }
)
INVOICE_EVENTS = frozenset(
    {"invoice.paid", "invoice.payment_failed", "invoice.payment_action_required"}
)
HANDLED = SUBSCRIPTION_EVENTS | INVOICE_EVENTS | {"checkout.session.completed"}
_PROBLEMS: dict[str, PaymentProblem] = {
    "invoice.payment_failed": "failed",
    "invoice.payment_action_required": "action_required",
}


class StripeEvent(Body):
    """A Stripe event as Stripe signs and sends it; the fields Roomcast reads are checked, and
    `id` and `type` fit the columns of `stripe_events`."""

    model_config = ConfigDict(extra="allow")

    id: Annotated[str, Field(min_length=1, max_length=255)]
    type: Annotated[str, Field(min_length=1, max_length=100)]
    created: int
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    id: str
    type: str
    created: int
    object: Mapping[str, Any]


def verify_event(payload: bytes, signature: str | None, secret: str) -> WebhookEvent:
    """The event in `payload`, once its `Stripe-Signature` proves it recent and Stripe's.

    Raises:
        Invalid: no, malformed, wrong or stale signature (checked before anything is
            parsed), or a signed body that is not a Stripe event.
    """
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, TOLERANCE_SECONDS)
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        raise Invalid("bad or stale Stripe-Signature") from None
    try:
        data = decode_frame(payload.decode("utf-8"))
    except ValueError:
        raise Invalid("body is not a Stripe event") from None
    # What is stored and looked up (`id`, `type`) is checked by name like any request body.
    checked = validate(StripeEvent, data)
    obj = checked.data.get("object")
    if not isinstance(obj, Mapping):
        raise Invalid("body is not a Stripe event")
    return WebhookEvent(checked.id, checked.type, checked.created, obj)


@dataclass(frozen=True, slots=True)
class _Target:
    """What an event points at: a subscription, and the team the event names, if any."""

    subscription_id: str | None
    team_hint: str | None
    customer_id: str | None


def _target(event: WebhookEvent) -> _Target:
    obj = event.object
    if event.type == "checkout.session.completed":
        if obj.get("mode") != "subscription":
            return _Target(None, None, None)
        metadata = obj.get("metadata") or {}
        hint = obj.get("client_reference_id") or metadata.get("team_id")
        return _Target(
            object_id(obj.get("subscription")),
            hint if isinstance(hint, str) else None,
            object_id(obj.get("customer")),
        )
    if event.type in SUBSCRIPTION_EVENTS:
        return _Target(object_id(obj.get("id")), None, object_id(obj.get("customer")))
    return _Target(_invoice_subscription(obj), None, object_id(obj.get("customer")))


def _invoice_subscription(invoice: Mapping[str, Any]) -> str | None:
    """An invoice's subscription: top-level before API 2025-03-31, under `parent` since."""
    legacy = object_id(invoice.get("subscription"))
    if legacy is not None:
        return legacy
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {} if isinstance(parent, Mapping) else {}
    return object_id(details.get("subscription")) if isinstance(details, Mapping) else None


async def _team_of(
    session: AsyncSession, target: _Target, sub: StripeSubscription | None
) -> str | None:
    if sub is not None:
        return await reconcile.find_team(session, sub, target.team_hint)
    if target.team_hint is not None and await subscriptions.team_exists(session, target.team_hint):
        return target.team_hint
    if target.customer_id is not None:
        return await subscriptions.team_of_customer(session, target.customer_id)
    return None


class _Duplicate(Exception):
    """A concurrent delivery of the same event committed first."""


class Webhooks:
    """Applies verified Stripe events to teams' subscriptions."""

    def __init__(
        self, billing: Billing, database: Database, notices: Notices, limits: PlanLimits
    ) -> None:
        self._billing = billing
        self._database = database
        self._notices = notices
        self._limits = limits

    async def handle(self, event: WebhookEvent) -> Outcome:
        """Apply `event` once. Raises Unavailable when Stripe cannot be asked (Stripe retries)."""
        async with self._database.sessions() as session:
            if await stripe_events.seen(session, event.id):
                return "duplicate"
        target = _target(event) if event.type in HANDLED else _Target(None, None, None)
        sub = None
        if target.subscription_id is not None:
            sub = await self._billing.subscription(target.subscription_id)
        stamp = reconcile.stamp_now()
        try:
            team_id, applied = await self._record_and_apply(event, target, sub, stamp)
        except _Duplicate:
            return "duplicate"
        await self._announce(event, team_id, applied)
        logger.info("stripe event %s (%s) applied to team %s", event.id, event.type, team_id)
        return "applied" if event.type in HANDLED else "ignored"

    async def _record_and_apply(
        self, event: WebhookEvent, target: _Target, sub: StripeSubscription | None, stamp: int
    ) -> tuple[str | None, Applied | None]:
        async with self._database.sessions() as session, session.begin():
            if not await stripe_events.record(session, event.id, event.type):
                raise _Duplicate(event.id)
            team_id = await _team_of(session, target, sub)
            if team_id is None:
                if event.type in HANDLED:
                    logger.warning("stripe event %s (%s): no team found", event.id, event.type)
                return None, None
            if event.type == "checkout.session.completed" and target.customer_id is not None:
                await reconcile.link_customer(session, team_id, target.customer_id)
            if sub is None:
                return team_id, None
            now = datetime.now(UTC)
            applied = await reconcile.apply(
                session, team_id, sub, stamp=stamp, now=now, limits=self._limits
            )
            return team_id, applied

    async def _announce(
        self, event: WebhookEvent, team_id: str | None, applied: Applied | None
    ) -> None:
        if team_id is None:
            return
        if applied is not None and applied.plan_changed:
            await self._notices.plan_changed(team_id, applied.plan_after)
        problem = _PROBLEMS.get(event.type)
        if problem is not None:
            await self._notices.payment_problem(team_id, problem)
