"""POST /webhooks/stripe: signed, size-limited, applied once, independent of arrival order."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

from server.config import PlanLimits
from server.state import BUS
from storage import outbox, subscriptions, teams
from storage.bus import BusEvent
from tests import seed
from tests.accounts import signup
from tests.fakes.stripe_api import event
from tests.server.billing.conftest import (
    API,
    Shop,
    billing_rows,
    error_code,
    signed,
    stored,
    stripe_settings,
)

WEBHOOK = f"{API}/webhooks/stripe"


async def _mail_to(shop: Shop, email: str) -> list[outbox.OutboxRecord]:
    async with shop.database.sessions() as session:
        return await outbox.list_for(session, email)


async def test_a_completed_checkout_makes_the_team_pro(shop: Shop) -> None:
    started = await shop.call(
        "POST", f"/teams/{shop.team_id}/billing/checkout", json={"plan": "pro"}
    )
    session_id = (await started.json())["url"].rsplit("/", 1)[1]
    session = shop.stripe.complete_checkout(session_id)
    sub = shop.stripe.subscriptions[session["subscription"]]

    response = await shop.deliver(event("checkout.session.completed", session))

    assert response.status == 200
    assert await response.json() == {"received": True, "outcome": "applied"}
    period_end = sub["items"]["data"][0]["current_period_end"]
    assert await shop.subscription() == {
        "plan": "pro",
        "status": "active",
        "current_period_end": _rfc3339(period_end),
        "cancel_at_period_end": False,
        "payments_available": True,
    }
    row = await stored(shop.database, shop.team_id)
    assert row is not None
    assert (row.subscription_id, row.customer_id) == (sub["id"], session["customer"])
    assert len(shop.stripe.requests_to("GET", f"/v1/subscriptions/{sub['id']}")) == 1
    assert (await billing_rows(shop.database))["customers"] == 1


async def test_a_period_end_on_the_subscription_itself_is_read_too(shop: Shop) -> None:
    shop.stripe.legacy_periods = True
    sub = await shop.pay()
    assert "current_period_end" not in sub["items"]["data"][0]
    assert (await shop.subscription())["current_period_end"] == _rfc3339(sub["current_period_end"])


async def test_refused_deliveries_change_nothing(shop: Shop) -> None:
    sub = shop.subscribe()
    payload = json.dumps(shop.checkout_completed(sub))
    good = signed(payload)
    big = json.dumps({**json.loads(payload), "padding": "x" * 1_000_000})
    attempts = {
        "wrong secret": (payload, signed(payload, secret="whsec_other"), 400),
        "stale timestamp": (payload, signed(payload, age=301), 400),
        "no signature": (payload, {"Content-Type": "application/json"}, 400),
        "garbled signature": (payload, {"Stripe-Signature": "t=abc,v1=zz"}, 400),
        "other body": (payload.replace("subscription", "subscriptioN"), good, 400),
        "1 MB body": (big, signed(big), 413),
    }
    for name, (body, headers, status) in attempts.items():
        response = await shop.client.post(WEBHOOK, data=body, headers=headers)
        code = "too_large" if status == 413 else "invalid"
        assert (response.status, await error_code(response)) == (status, code), name
    assert await billing_rows(shop.database) == {
        "stripe_events": 0,
        "subscriptions": 0,
        "customers": 0,
    }
    assert shop.stripe.requests == []


async def test_a_body_over_the_limit_is_refused_without_a_content_length(shop: Shop) -> None:
    async def chunks():
        for _ in range(9):
            yield b"x" * 64 * 1024

    response = await shop.client.post(WEBHOOK, data=chunks(), headers=signed("irrelevant"))
    assert (response.status, await error_code(response)) == (413, "too_large")


async def test_a_signature_just_inside_the_tolerance_is_accepted(shop: Shop) -> None:
    sub = shop.subscribe()
    response = await shop.deliver(shop.checkout_completed(sub), age=290)
    assert response.status == 200
    assert (await shop.subscription())["plan"] == "pro"


async def test_webhooks_without_a_signing_secret_are_unavailable(make_client, stripe_api) -> None:
    client = await make_client(**{**stripe_settings(stripe_api), "stripe_webhook_secret": None})
    payload = json.dumps(event("invoice.paid", {"id": "in_1"}))
    response = await client.post(WEBHOOK, data=payload, headers=signed(payload))
    assert (response.status, await error_code(response)) == (503, "unavailable")


async def test_the_same_event_twice_is_applied_once(shop: Shop) -> None:
    sub = await shop.pay()
    shop.stripe.update_subscription(sub["id"], status="past_due")
    failed = event("invoice.payment_failed", shop.stripe.invoice(sub["id"]))

    first = await shop.deliver(failed)
    second = await shop.deliver(failed)

    assert (await first.json())["outcome"] == "applied"
    assert (second.status, (await second.json())["outcome"]) == (200, "duplicate")
    assert len(await _mail_to(shop, shop.owner.email)) == 1
    assert (await billing_rows(shop.database))["stripe_events"] == 2  # the checkout and this
    assert len(shop.stripe.requests_to("GET", f"/v1/subscriptions/{sub['id']}")) == 2


async def test_a_newer_cancellation_arriving_before_the_checkout_still_ends_on_basic(
    shop: Shop,
) -> None:
    sub = shop.subscribe()
    now = int(time.time())
    checkout = shop.checkout_completed(sub, created=now - 60)
    shop.stripe.update_subscription(sub["id"], status="canceled")
    canceled = event("customer.subscription.updated", dict(sub), created=now)

    assert (await shop.deliver(canceled)).status == 200
    assert (await shop.deliver(checkout)).status == 200

    state = await shop.subscription()
    assert (state["plan"], state["status"]) == ("basic", "canceled")
    async with shop.database.sessions() as session:
        assert await subscriptions.customer_of(session, shop.team_id) == sub["customer"]


async def test_a_failed_payment_moves_to_past_due_and_mails_every_owner(shop: Shop) -> None:
    async with shop.database.sessions.begin() as session:
        co_owner = await seed.user(session, "Cora")
        await teams.add_member(session, shop.team_id, co_owner.id, "owner")
    sub = await shop.pay()
    shop.stripe.update_subscription(sub["id"], status="past_due")

    response = await shop.deliver(event("invoice.payment_failed", shop.stripe.invoice(sub["id"])))

    assert response.status == 200
    state = await shop.subscription()
    assert (state["plan"], state["status"]) == ("pro", "past_due")  # within the grace period
    for email in (shop.owner.email, co_owner.email):
        [mail] = await _mail_to(shop, email or "")
        assert mail.subject == "Payment failed for Crew on Roomcast"
        assert f"https://roomcast.test/teams/{shop.team_id}/billing" in mail.body
    for account in (shop.admin, shop.member):
        assert await _mail_to(shop, account.email) == []


async def test_past_due_falls_to_basic_once_the_grace_period_is_over(
    make_client, database, stripe_api
) -> None:
    client = await make_client(
        **stripe_settings(stripe_api), plans=PlanLimits(past_due_grace_days=0)
    )
    owner = await signup(client)
    made = await client.post(f"{API}/teams", json={"name": "Crew"}, headers=owner.headers)
    team_id = (await made.json())["id"]
    shop = Shop(client, database, stripe_api, owner, owner, owner, owner, team_id)
    sub = await shop.pay()
    shop.stripe.update_subscription(sub["id"], status="past_due")
    await shop.deliver(event("invoice.payment_failed", shop.stripe.invoice(sub["id"])))

    state = await shop.subscription()
    assert (state["plan"], state["status"]) == ("basic", "past_due")
    assert await shop.quotas.plan_of(owner.id) == "basic"


async def test_a_payment_needing_action_mails_the_owners(shop: Shop) -> None:
    sub = await shop.pay()
    invoice = shop.stripe.invoice(sub["id"])
    response = await shop.deliver(event("invoice.payment_action_required", invoice))
    assert response.status == 200
    [mail] = await _mail_to(shop, shop.owner.email)
    assert mail.subject == "Action needed to pay for Crew on Roomcast"
    assert (await shop.subscription())["plan"] == "pro"


async def test_a_paid_invoice_brings_a_past_due_team_back_to_active(shop: Shop) -> None:
    sub = await shop.pay()
    shop.stripe.update_subscription(sub["id"], status="past_due")
    await shop.deliver(event("invoice.payment_failed", shop.stripe.invoice(sub["id"])))
    shop.stripe.update_subscription(sub["id"], status="active")
    await shop.deliver(event("invoice.paid", shop.stripe.invoice(sub["id"], status="paid")))
    state = await shop.subscription()
    assert (state["plan"], state["status"]) == ("pro", "active")


async def test_a_cancellation_at_period_end_is_shown_and_keeps_pro(shop: Shop) -> None:
    sub = await shop.pay()
    shop.stripe.update_subscription(sub["id"], cancel_at_period_end=True)
    await shop.deliver(event("customer.subscription.updated", dict(sub)))
    state = await shop.subscription()
    assert (state["plan"], state["cancel_at_period_end"]) == ("pro", True)


async def test_plan_changes_are_announced_on_the_control_channel(shop: Shop) -> None:
    seen: list[dict] = []
    arrived = asyncio.Event()

    def on_control(bus_event: BusEvent) -> None:
        seen.append(json.loads(bus_event.data))
        arrived.set()

    subscription = await shop.client.app[BUS].subscribe("control", on_control)
    try:
        sub = await shop.pay()
        await asyncio.wait_for(arrived.wait(), timeout=10)
        arrived.clear()
        shop.stripe.update_subscription(sub["id"], status="canceled")
        await shop.deliver(event("customer.subscription.deleted", dict(sub)))
        while len(seen) < 2:
            await asyncio.wait_for(arrived.wait(), timeout=10)
            arrived.clear()
    finally:
        subscription.close()
    assert seen == [
        {"type": "plan_changed", "team_id": shop.team_id, "plan": "pro"},
        {"type": "plan_changed", "team_id": shop.team_id, "plan": "basic"},
    ]


async def test_an_ended_old_subscription_does_not_displace_the_running_one(shop: Shop) -> None:
    old = await shop.pay()
    shop.stripe.update_subscription(old["id"], status="canceled")
    new = shop.stripe.add_subscription(old["customer"], team_id=shop.team_id)
    await shop.deliver(event("customer.subscription.created", dict(new)))
    await shop.deliver(event("customer.subscription.deleted", dict(old)))
    row = await stored(shop.database, shop.team_id)
    assert row is not None
    assert (row.subscription_id, row.status) == (new["id"], "active")


async def test_events_stripe_cannot_confirm_or_we_do_not_handle_are_recorded_and_ignored(
    shop: Shop,
) -> None:
    ghost = event("customer.subscription.updated", {"id": "sub_ghost", "object": "subscription"})
    other = event("customer.created", {"id": "cus_1", "object": "customer"})
    assert (await shop.deliver(ghost)).status == 200
    assert (await (await shop.deliver(other)).json())["outcome"] == "ignored"
    assert await billing_rows(shop.database) == {
        "stripe_events": 2,
        "subscriptions": 0,
        "customers": 0,
    }


async def test_stripe_down_during_a_webhook_answers_503_so_stripe_redelivers(shop: Shop) -> None:
    sub = shop.subscribe()
    checkout = shop.checkout_completed(sub)
    shop.stripe.fail("GET", f"/v1/subscriptions/{sub['id']}", 503, times=3)

    refused = await shop.deliver(checkout)
    assert (refused.status, await error_code(refused)) == (503, "unavailable")
    assert (await billing_rows(shop.database))["stripe_events"] == 0

    redelivered = await shop.deliver(checkout)
    assert redelivered.status == 200
    assert (await shop.subscription())["plan"] == "pro"


def _rfc3339(stamp: int) -> str:
    moment = datetime.fromtimestamp(stamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
