"""Teams' Stripe subscriptions as last seen, and the link from a team to its Stripe customer.

One row per team that ever had a subscription (teams without one are on `basic`).
`stripe_updated` orders competing writes: billing keeps the state with the newest stamp.
`updated_at` is when the status last changed: writes that keep the status keep it, which is
what the `past_due` grace period counts from (the caller passes it as `status_since`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from errors import NotFound
from storage.models import Subscription, Team, TeamMember, User


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    team_id: str
    subscription_id: str | None
    customer_id: str | None
    plan: str
    status: str
    current_period_end: datetime | None
    cancel_at_period_end: bool
    stripe_updated: int
    status_since: datetime

    @classmethod
    def of(cls, row: Subscription) -> SubscriptionRecord:
        return cls(
            team_id=row.team_id,
            subscription_id=row.stripe_subscription_id,
            customer_id=row.stripe_customer_id,
            plan=row.plan,
            status=row.status,
            current_period_end=row.current_period_end,
            cancel_at_period_end=row.cancel_at_period_end,
            stripe_updated=row.stripe_updated,
            status_since=row.updated_at,
        )


@dataclass(frozen=True, slots=True)
class SubscriptionWrite:
    """The state to store for a team, stamped for ordering."""

    subscription_id: str
    customer_id: str | None
    plan: str
    status: str
    current_period_end: datetime | None
    cancel_at_period_end: bool
    stripe_updated: int
    status_since: datetime


@dataclass(frozen=True, slots=True)
class BilledTeam:
    """A team Stripe knows: its customer and the subscription last stored for it."""

    team_id: str
    customer_id: str | None
    subscription_id: str | None


@dataclass(frozen=True, slots=True)
class BillingContacts:
    team_name: str
    emails: list[str]


async def get(session: AsyncSession, team_id: str) -> SubscriptionRecord | None:
    row = await session.get(Subscription, team_id)
    return None if row is None else SubscriptionRecord.of(row)


async def lock_team(session: AsyncSession, team_id: str) -> SubscriptionRecord | None:
    """Lock the team until commit, so billing writes to one team apply one at a time.

    Returns the team's subscription row as it is under the lock (None when it has none).

    Raises:
        NotFound: no such team.
    """
    found = await session.scalar(select(Team.id).where(Team.id == team_id).with_for_update())
    if found is None:
        raise NotFound("no such team")
    row = await session.scalar(select(Subscription).where(Subscription.team_id == team_id))
    return None if row is None else SubscriptionRecord.of(row)


async def save(
    session: AsyncSession, team_id: str, write: SubscriptionWrite, *, exists: bool
) -> None:
    """Insert or overwrite the team's row with `write`. Call `lock_team` first."""
    values = {
        "stripe_subscription_id": write.subscription_id,
        "stripe_customer_id": write.customer_id,
        "plan": write.plan,
        "status": write.status,
        "current_period_end": write.current_period_end,
        "cancel_at_period_end": write.cancel_at_period_end,
        "stripe_updated": write.stripe_updated,
        "updated_at": write.status_since,
    }
    if exists:
        await session.execute(
            update(Subscription)
            .where(Subscription.team_id == team_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    else:
        await session.execute(insert(Subscription).values(team_id=team_id, **values))


async def for_user(session: AsyncSession, user_id: str) -> list[SubscriptionRecord]:
    """The subscription rows of every team the user belongs to."""
    result = await session.execute(
        select(Subscription)
        .join(TeamMember, TeamMember.team_id == Subscription.team_id)
        .where(TeamMember.user_id == user_id)
    )
    return [SubscriptionRecord.of(row) for row in result.scalars()]


async def statuses_of_users(
    session: AsyncSession, user_ids: Collection[str]
) -> dict[str, list[tuple[str, datetime]]]:
    """Each user's teams' subscriptions as (status, status since), in one statement; users
    in no subscribed team are left out."""
    result = await session.execute(
        select(TeamMember.user_id, Subscription.status, Subscription.updated_at)
        .join(TeamMember, TeamMember.team_id == Subscription.team_id)
        .where(TeamMember.user_id.in_(user_ids))
    )
    found: dict[str, list[tuple[str, datetime]]] = {}
    for user_id, status, since in result:
        found.setdefault(user_id, []).append((status, since))
    return found


async def team_of_subscription(session: AsyncSession, subscription_id: str) -> str | None:
    return await session.scalar(
        select(Subscription.team_id).where(Subscription.stripe_subscription_id == subscription_id)
    )


async def team_of_customer(session: AsyncSession, customer_id: str) -> str | None:
    return await session.scalar(select(Team.id).where(Team.stripe_customer_id == customer_id))


async def team_exists(session: AsyncSession, team_id: str) -> bool:
    return await session.scalar(select(Team.id).where(Team.id == team_id)) is not None


async def customer_of(session: AsyncSession, team_id: str) -> str | None:
    """The team's Stripe customer id, None until its first checkout completes."""
    return await session.scalar(select(Team.stripe_customer_id).where(Team.id == team_id))


async def link_customer(session: AsyncSession, team_id: str, customer_id: str) -> bool:
    """Give the team its Stripe customer unless it has one already; True when it was set."""
    result = await session.execute(
        update(Team)
        .where(Team.id == team_id, Team.stripe_customer_id.is_(None))
        .values(stripe_customer_id=customer_id)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def billing_contacts(session: AsyncSession, team_id: str) -> BillingContacts | None:
    """The team's name and its owners' email addresses (owners receive billing mail)."""
    name = await session.scalar(select(Team.name).where(Team.id == team_id))
    if name is None:
        return None
    emails = await session.scalars(
        select(User.email)
        .join(TeamMember, TeamMember.user_id == User.id)
        .where(
            TeamMember.team_id == team_id,
            TeamMember.role == "owner",
            User.email.is_not(None),
        )
        .order_by(User.email)
    )
    return BillingContacts(name, [email for email in emails if email])


async def billed_teams(session: AsyncSession) -> list[BilledTeam]:
    """Every team with a Stripe customer or a stored subscription, for reconciliation."""
    result = await session.execute(
        select(Team.id, Team.stripe_customer_id, Subscription.stripe_subscription_id)
        .outerjoin(Subscription, Subscription.team_id == Team.id)
        .where(
            or_(
                Team.stripe_customer_id.is_not(None),
                Subscription.stripe_subscription_id.is_not(None),
            )
        )
        .order_by(Team.id)
    )
    return [BilledTeam(team_id, customer, sub) for team_id, customer, sub in result.all()]
