"""The ordering rule under the webhooks: a state read earlier never overwrites a later one."""

from __future__ import annotations

from datetime import UTC, datetime

from server.billing import reconcile
from server.billing.api import StripeSubscription
from server.config import PlanLimits
from storage.db import Database
from tests import seed
from tests.server.billing.conftest import stored

LIMITS = PlanLimits()


def _sub(status: str, *, sub_id: str = "sub_1", created: int = 1) -> StripeSubscription:
    end = datetime(2026, 12, 21, tzinfo=UTC)
    return StripeSubscription(sub_id, "cus_1", status, end, False, created, None)


async def _apply(database: Database, team_id: str, sub: StripeSubscription, stamp: int):
    async with database.sessions.begin() as session:
        return await reconcile.apply(
            session, team_id, sub, stamp=stamp, now=datetime.now(UTC), limits=LIMITS
        )


async def _team(database: Database) -> str:
    async with database.sessions.begin() as session:
        ada = await seed.user(session)
        return (await seed.team(session, ada)).team.id


async def test_an_older_state_written_after_a_newer_one_is_dropped(database: Database) -> None:
    team_id = await _team(database)
    newer = await _apply(database, team_id, _sub("canceled"), stamp=2_000)
    older = await _apply(database, team_id, _sub("active"), stamp=1_000)
    row = await stored(database, team_id)
    assert row is not None
    assert (row.status, row.plan, row.stripe_updated) == ("canceled", "basic", 2_000)
    assert (newer.changed, older.changed, older.plan_after) == (True, False, "basic")


async def test_the_grace_period_counts_from_when_the_status_became_past_due(
    database: Database,
) -> None:
    team_id = await _team(database)
    await _apply(database, team_id, _sub("past_due"), stamp=1)
    first = await stored(database, team_id)
    await _apply(database, team_id, _sub("past_due"), stamp=2)
    again = await stored(database, team_id)
    await _apply(database, team_id, _sub("active"), stamp=3)
    recovered = await stored(database, team_id)
    assert first is not None and again is not None and recovered is not None
    assert again.status_since == first.status_since
    assert again.stripe_updated == 2
    assert recovered.status_since > first.status_since


async def test_a_plan_change_is_reported_only_when_the_plan_changes(database: Database) -> None:
    team_id = await _team(database)
    paid = await _apply(database, team_id, _sub("active"), stamp=1)
    renewed = await _apply(database, team_id, _sub("active"), stamp=2)
    ended = await _apply(database, team_id, _sub("unpaid"), stamp=3)
    assert [(a.plan_before, a.plan_after) for a in (paid, renewed, ended)] == [
        ("basic", "pro"),
        ("pro", "pro"),
        ("pro", "basic"),
    ]
    assert [a.plan_changed for a in (paid, renewed, ended)] == [True, False, True]
