"""Reconciliation (`python run.py billing-sync`): re-read every billed team's subscription
from Stripe and repair the local row, for webhooks that were missed or failed for good.

For each team with a Stripe customer or a stored subscription, the subscription to keep is
the running one (else the newest) among the customer's subscriptions and the stored one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from errors import RoomcastError
from server.billing import reconcile
from server.billing.api import Billing, StripeSubscription
from server.billing.notices import announce_plan
from server.billing.plans import ENDED_STATUSES
from server.billing.stripe_billing import StripeBilling
from server.config import PlanLimits, Settings
from storage import redis as redis_conn
from storage import subscriptions
from storage.bus import Bus, RedisStreamBus
from storage.db import Database
from storage.subscriptions import BilledTeam

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SyncReport:
    teams: int
    repaired: int
    failed: int


def _preferred(found: list[StripeSubscription]) -> StripeSubscription | None:
    """The running subscription if any, else the newest one."""
    if not found:
        return None
    return max(found, key=lambda sub: (sub.status not in ENDED_STATUSES, sub.created))


async def _fetch(billing: Billing, team: BilledTeam) -> StripeSubscription | None:
    found = await billing.subscriptions_of(team.customer_id) if team.customer_id else []
    if team.subscription_id and all(sub.id != team.subscription_id for sub in found):
        stored = await billing.subscription(team.subscription_id)
        if stored is not None:
            found.append(stored)
    return _preferred(found)


async def sync_team(
    billing: Billing, database: Database, team: BilledTeam, limits: PlanLimits
) -> reconcile.Applied | None:
    """Bring one team's row in line with Stripe; None when Stripe has no subscription for it."""
    sub = await _fetch(billing, team)
    if sub is None:
        return None
    stamp = reconcile.stamp_now()
    async with database.sessions.begin() as session:
        return await reconcile.apply(
            session, team.team_id, sub, stamp=stamp, now=datetime.now(UTC), limits=limits
        )


async def sync_all(
    billing: Billing, database: Database, limits: PlanLimits, bus: Bus | None = None
) -> SyncReport:
    """Repair every billed team; one team's failure is logged and the others go on."""
    async with database.sessions() as session:
        teams = await subscriptions.billed_teams(session)
    repaired = failed = 0
    for team in teams:
        try:
            applied = await sync_team(billing, database, team, limits)
        except RoomcastError as exc:
            failed += 1
            logger.warning("billing-sync: team %s failed: %s", team.team_id, exc.message)
            continue
        if applied is None or not applied.changed:
            continue
        repaired += 1
        logger.info("billing-sync: repaired team %s", team.team_id)
        if applied.plan_changed and bus is not None:
            await announce_plan(bus, team.team_id, applied.plan_after)
    return SyncReport(len(teams), repaired, failed)


async def run(settings: Settings) -> SyncReport:
    """The command: open what sync needs from `settings`, sync, close."""
    database = Database(settings.database_url, pool_size=2)
    billing = StripeBilling(settings)
    redis = (
        redis_conn.connect(settings.redis_url, cluster=settings.redis_cluster)
        if settings.redis_url
        else None
    )
    bus = RedisStreamBus(redis) if redis is not None else None
    try:
        return await sync_all(billing, database, settings.plans, bus)
    finally:
        await billing.close()
        if bus is not None:
            await bus.close()
        if redis is not None:
            await redis.aclose()
        await database.close()
