"""Plans, a team's subscription as members see it, GET /usage, and the daily AI quota."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from server.billing.quotas import Quotas, next_midnight
from server.config import PlanLimits
from storage.kv import MemoryKeyValue
from tests.accounts import four_roles
from tests.server.billing.conftest import API, Shop


async def test_plans_are_listed_without_signing_in(client) -> None:
    response = await client.get(f"{API}/billing/plans")
    assert response.status == 200
    assert await response.json() == [
        {"id": "basic", "name": "Basic", "daily_ai_prompts": 20, "price": "free"},
        {"id": "pro", "name": "Pro", "daily_ai_prompts": 1000, "price": "$12/month"},
    ]


async def test_plans_follow_the_settings(make_client) -> None:
    limits = PlanLimits(basic_daily_ai_prompts=5, pro_daily_ai_prompts=50, pro_price="€9/month")
    client = await make_client(plans=limits)
    plans = await (await client.get(f"{API}/billing/plans")).json()
    assert [(p["daily_ai_prompts"], p["price"]) for p in plans] == [(5, "free"), (50, "€9/month")]


async def test_a_team_that_never_paid_is_on_basic(shop: Shop) -> None:
    for who in ("owner", "admin", "member"):
        response = await shop.call("GET", f"/teams/{shop.team_id}/subscription", who)
        assert await response.json() == {
            "plan": "basic",
            "status": "active",
            "current_period_end": None,
            "cancel_at_period_end": False,
            "payments_available": True,
        }


async def test_a_server_without_a_payment_provider_says_so_on_the_subscription(
    client, database
) -> None:
    owner, _admin, member, _outsider, team_id = await four_roles(client, database)
    for who in (owner, member):
        response = await client.get(f"{API}/teams/{team_id}/subscription", headers=who.headers)
        body = await response.json()
        assert (body["plan"], body["payments_available"]) == ("basic", False)
    checkout = await client.post(
        f"{API}/teams/{team_id}/billing/checkout", json={"plan": "pro"}, headers=owner.headers
    )
    assert checkout.status == 503  # as the flag said


async def test_a_subscription_is_hidden_from_outsiders_and_anonymous_callers(shop: Shop) -> None:
    outsider = await shop.call("GET", f"/teams/{shop.team_id}/subscription", "outsider")
    anonymous = await shop.call("GET", f"/teams/{shop.team_id}/subscription", "anonymous")
    unknown = await shop.call("GET", "/teams/not-a-team/subscription")
    assert (outsider.status, anonymous.status, unknown.status) == (404, 401, 404)


async def test_usage_shows_the_basic_allowance_and_the_next_utc_midnight(shop: Shop) -> None:
    before = next_midnight(datetime.now(UTC))
    response = await shop.call("GET", "/usage", "member")
    after = next_midnight(datetime.now(UTC))
    assert response.status == 200
    usage = await response.json()
    resets_at = datetime.fromisoformat(usage.pop("resets_at"))
    assert usage == {"plan": "basic", "ai_prompts_today": 0, "daily_ai_prompts": 20}
    assert resets_at in (before, after)
    assert (await shop.call("GET", "/usage", "anonymous")).status == 401


async def test_the_21st_prompt_of_a_basic_user_is_refused_until_the_team_goes_pro(
    shop: Shop,
) -> None:
    user = shop.member.id
    granted = [await shop.quotas.try_consume(user) for _ in range(21)]
    assert granted == [True] * 20 + [False]
    assert await shop.quotas.try_consume(user) is False
    assert await shop.quotas.used_today(user) == 20

    await shop.pay()

    assert await shop.quotas.try_consume(user) is True
    assert await shop.quotas.used_today(user) == 21
    usage = await (await shop.call("GET", "/usage", "member")).json()
    assert (usage["plan"], usage["ai_prompts_today"], usage["daily_ai_prompts"]) == (
        "pro",
        21,
        1000,
    )


async def test_a_pro_team_makes_its_members_pro_users_and_nobody_else(shop: Shop) -> None:
    await shop.pay()
    plans = {}
    for who in ("owner", "admin", "member", "outsider"):
        plans[who] = (await (await shop.call("GET", "/usage", who)).json())["plan"]
    assert plans == {"owner": "pro", "admin": "pro", "member": "pro", "outsider": "basic"}


async def test_concurrent_prompts_never_exceed_the_allowance(shop: Shop) -> None:
    results = await asyncio.gather(*(shop.quotas.try_consume(shop.owner.id) for _ in range(40)))
    assert sum(results) <= 20
    assert await shop.quotas.used_today(shop.owner.id) == sum(results)


async def test_each_utc_day_starts_a_fresh_count(shop: Shop) -> None:
    moment = datetime(2026, 11, 21, 23, 59, 59, tzinfo=UTC)
    limits = replace(PlanLimits(), basic_daily_ai_prompts=1)
    quotas = Quotas(MemoryKeyValue(), shop.database, limits, clock=lambda: moment)
    assert [await quotas.try_consume("u1"), await quotas.try_consume("u1")] == [True, False]
    moment += timedelta(seconds=1)
    assert await quotas.used_today("u1") == 0
    assert await quotas.try_consume("u1") is True
    usage = await quotas.usage("u1")
    assert usage.resets_at == datetime(2026, 11, 23, tzinfo=UTC)
