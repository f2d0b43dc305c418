"""Bring a team's subscription row in line with Stripe's state of the subscription.

Webhooks and `run.py billing-sync` both end here. They hand over the subscription as
Stripe has it at the moment of asking, stamped with that moment (milliseconds): the row
keeps the state with the newest stamp, so deliveries that race or arrive out of order
cannot put an older state over a newer one. An ended subscription never displaces another,
still running, subscription of the same team.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from server.billing.api import StripeSubscription
from server.billing.plans import ENDED_STATUSES, PlanId, effective_plan, plan_of_status
from server.config import PlanLimits
from storage import subscriptions
from storage.subscriptions import SubscriptionRecord, SubscriptionWrite

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Applied:
    """What a write did to a team: its plan before and after, and whether anything changed."""

    team_id: str
    plan_before: PlanId
    plan_after: PlanId
    changed: bool

    @property
    def plan_changed(self) -> bool:
        return self.plan_before != self.plan_after


def stamp_now() -> int:
    """The ordering stamp for a state read from Stripe just now."""
    return time.time_ns() // 1_000_000


def plan_of_row(row: SubscriptionRecord | None, now: datetime, limits: PlanLimits) -> PlanId:
    """The plan in force for a team whose subscription row is `row` (None: never paid)."""
    if row is None:
        return "basic"
    return effective_plan(row.status, row.status_since, now, limits)


async def find_team(session: AsyncSession, sub: StripeSubscription, hint: str | None) -> str | None:
    """The team a subscription belongs to: the one that holds it already, else the team in
    its metadata (or `hint`, the checkout's client_reference_id), else its customer's team."""
    held = await subscriptions.team_of_subscription(session, sub.id)
    if held is not None:
        return held
    for candidate in (sub.team_id, hint):
        if candidate is not None and await subscriptions.team_exists(session, candidate):
            return candidate
    if sub.customer_id is not None:
        return await subscriptions.team_of_customer(session, sub.customer_id)
    return None


async def link_customer(session: AsyncSession, team_id: str, customer_id: str) -> None:
    """Remember the team's Stripe customer (first one wins; a customer has one team)."""
    owner = await subscriptions.team_of_customer(session, customer_id)
    if owner is None:
        await subscriptions.link_customer(session, team_id, customer_id)
    elif owner != team_id:
        logger.warning("customer %s belongs to team %s, not %s", customer_id, owner, team_id)


def _supersedes(current: SubscriptionRecord, sub: StripeSubscription, stamp: int) -> bool:
    if stamp < current.stripe_updated:
        return False  # a newer state is stored already
    replacing = current.subscription_id not in (None, sub.id)
    return not (replacing and sub.status in ENDED_STATUSES and current.status not in ENDED_STATUSES)


async def apply(
    session: AsyncSession,
    team_id: str,
    sub: StripeSubscription,
    *,
    stamp: int,
    now: datetime,
    limits: PlanLimits,
) -> Applied:
    """Store `sub` as the team's subscription unless the row holds something newer.

    Runs in the caller's transaction, under a lock on the team.

    Raises:
        NotFound: no such team.
    """
    current = await subscriptions.lock_team(session, team_id)
    before = plan_of_row(current, now, limits)
    if sub.customer_id is not None:
        await link_customer(session, team_id, sub.customer_id)
    if current is not None and not _supersedes(current, sub, stamp):
        logger.info("team %s: kept its stored subscription over %s", team_id, sub.id)
        return Applied(team_id, before, before, changed=False)
    same_status = current is not None and (current.subscription_id, current.status) == (
        sub.id,
        sub.status,
    )
    write = SubscriptionWrite(
        subscription_id=sub.id,
        customer_id=sub.customer_id,
        plan=plan_of_status(sub.status),
        status=sub.status,
        current_period_end=sub.current_period_end,
        cancel_at_period_end=sub.cancel_at_period_end,
        stripe_updated=stamp,
        status_since=current.status_since if current is not None and same_status else now,
    )
    await subscriptions.save(session, team_id, write, exists=current is not None)
    after = effective_plan(write.status, write.status_since, now, limits)
    return Applied(team_id, before, after, changed=_differs(current, write))


def _differs(current: SubscriptionRecord | None, write: SubscriptionWrite) -> bool:
    if current is None:
        return True
    return (
        current.subscription_id,
        current.customer_id,
        current.status,
        current.current_period_end,
        current.cancel_at_period_end,
    ) != (
        write.subscription_id,
        write.customer_id,
        write.status,
        write.current_period_end,
        write.cancel_at_period_end,
    )
