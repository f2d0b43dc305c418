"""Reconciliation: `run.py billing-sync` repairs what missed webhooks left behind."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from server.billing.stripe_billing import StripeBilling
from server.billing.sync import sync_all
from server.state import BILLING, SETTINGS
from tests import seed
from tests.fakes.stripe_api import event
from tests.server.billing.conftest import Shop, stored, stripe_settings

ROOT = Path(__file__).resolve().parents[3]


async def _sync(shop: Shop):
    app = shop.client.app
    billing = app[BILLING]
    assert isinstance(billing, StripeBilling)
    return await sync_all(billing, shop.database, app[SETTINGS].plans)


async def test_sync_repairs_a_subscription_whose_webhook_was_missed(shop: Shop) -> None:
    sub = await shop.pay()
    shop.stripe.update_subscription(sub["id"], status="canceled")  # no webhook comes

    report = await _sync(shop)

    assert (report.teams, report.repaired, report.failed) == (1, 1, 0)
    state = await shop.subscription()
    assert (state["plan"], state["status"]) == ("basic", "canceled")
    assert await shop.quotas.plan_of(shop.member.id) == "basic"


async def test_sync_finds_the_customers_new_subscription(shop: Shop) -> None:
    old = await shop.pay()
    shop.stripe.update_subscription(old["id"], status="canceled")
    await shop.deliver(event("customer.subscription.deleted", dict(old)))
    new = shop.stripe.add_subscription(old["customer"], team_id=shop.team_id)  # webhook lost

    report = await _sync(shop)

    assert report.repaired == 1
    row = await stored(shop.database, shop.team_id)
    assert row is not None
    assert (row.subscription_id, row.status) == (new["id"], "active")


async def test_sync_leaves_rows_that_are_right_alone(shop: Shop) -> None:
    await shop.pay()
    before = await stored(shop.database, shop.team_id)
    report = await _sync(shop)
    after = await stored(shop.database, shop.team_id)
    assert (report.teams, report.repaired, report.failed) == (1, 0, 0)
    assert before is not None and after is not None
    assert (after.status, after.status_since) == (before.status, before.status_since)


async def test_sync_goes_on_past_a_team_stripe_fails_for(shop: Shop) -> None:
    first = await shop.pay()
    async with shop.database.sessions.begin() as session:
        other = (await seed.team(session, await seed.user(session), "Other")).team.id
    second = await shop.pay(other)
    shop.stripe.update_subscription(first["id"], status="canceled")
    shop.stripe.update_subscription(second["id"], status="canceled")
    shop.stripe.fail("GET", "/v1/subscriptions", 400, type_="invalid_request_error")

    report = await _sync(shop)

    assert (report.teams, report.repaired, report.failed) == (2, 1, 1)


async def test_the_billing_sync_command_repairs_the_database(
    shop: Shop, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    sub = await shop.pay()
    shop.stripe.update_subscription(sub["id"], status="unpaid")
    env = {
        **os.environ,
        **{key.upper(): value for key, value in stripe_settings(shop.stripe).items()},
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ENV": "test",
        "VAR_DIR": str(tmp_path),
        "SECRET_KEY": "x" * 40,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "run.py",
        "billing-sync",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()

    assert process.returncode == 0, err.decode()
    assert out.decode().strip() == "billing-sync: teams checked 1, repaired 1, failed 0"
    state = await shop.subscription()
    assert (state["plan"], state["status"]) == ("basic", "unpaid")
