"""Checkout and portal sessions through the stripe SDK, against the local fake Stripe API."""

from __future__ import annotations

import pytest

from tests.accounts import signup
from tests.fakes.stripe_api import event
from tests.server.billing.conftest import API, Shop, error_code, stripe_settings
from tests.services import free_port

CHECKOUT = "/v1/checkout/sessions"
PORTAL = "/v1/billing_portal/sessions"


async def test_an_owner_gets_a_checkout_session_for_the_pro_price(shop: Shop) -> None:
    response = await shop.call(
        "POST", f"/teams/{shop.team_id}/billing/checkout", json={"plan": "pro"}
    )
    assert response.status == 200, await response.text()
    url = (await response.json())["url"]
    assert url.startswith("https://checkout.stripe.test/c/pay/cs_test_")

    [sent] = shop.stripe.requests_to("POST", CHECKOUT)
    assert sent.form["mode"] == "subscription"
    assert sent.form["line_items"] == [{"price": "price_pro", "quantity": "1"}]
    assert sent.form["client_reference_id"] == shop.team_id
    assert sent.form["subscription_data"] == {"metadata": {"team_id": shop.team_id}}
    assert sent.form["customer_email"] == shop.owner.email
    assert "customer" not in sent.form
    assert sent.form["success_url"].startswith(f"https://roomcast.test/teams/{shop.team_id}/")
    assert sent.form["cancel_url"].startswith(f"https://roomcast.test/teams/{shop.team_id}/")
    assert sent.headers["Idempotency-Key"]
    assert sent.headers["Authorization"] == "Bearer sk_test_x"


async def test_an_admin_may_check_out_and_a_member_may_not(shop: Shop) -> None:
    path = f"/teams/{shop.team_id}/billing/checkout"
    admin = await shop.call("POST", path, "admin", json={"plan": "pro"})
    member = await shop.call("POST", path, "member", json={"plan": "pro"})
    outsider = await shop.call("POST", path, "outsider", json={"plan": "pro"})
    anonymous = await shop.call("POST", path, "anonymous", json={"plan": "pro"})
    assert admin.status == 200
    assert (member.status, await error_code(member)) == (403, "forbidden")
    assert (outsider.status, await error_code(outsider)) == (404, "not_found")
    assert anonymous.status == 401
    assert len(shop.stripe.requests_to("POST", CHECKOUT)) == 1


async def test_checkout_reuses_the_customer_of_a_team_that_paid_before(shop: Shop) -> None:
    sub = await shop.pay()
    shop.stripe.update_subscription(sub["id"], status="canceled")
    await shop.deliver(_updated(sub))

    response = await shop.call(
        "POST", f"/teams/{shop.team_id}/billing/checkout", json={"plan": "pro"}
    )
    assert response.status == 200
    [sent] = shop.stripe.requests_to("POST", CHECKOUT)
    assert sent.form["customer"] == sub["customer"]
    assert "customer_email" not in sent.form


async def test_a_team_that_is_pro_already_is_sent_to_the_portal_instead(shop: Shop) -> None:
    await shop.pay()
    response = await shop.call(
        "POST", f"/teams/{shop.team_id}/billing/checkout", json={"plan": "pro"}
    )
    assert (response.status, await error_code(response)) == (409, "conflict")
    assert shop.stripe.requests_to("POST", CHECKOUT) == []


async def test_checkout_without_stripe_settings_is_unavailable(client) -> None:
    owner = await signup(client)
    made = await client.post(f"{API}/teams", json={"name": "Crew"}, headers=owner.headers)
    team_id = (await made.json())["id"]
    for path, body in (("checkout", {"plan": "pro"}), ("portal", None)):
        response = await client.post(
            f"{API}/teams/{team_id}/billing/{path}", json=body, headers=owner.headers
        )
        assert response.status == 503
        error = (await response.json())["error"]
        assert (error["code"], error["message"]) == ("unavailable", "billing is not configured")


async def test_checkout_without_a_pro_price_is_unavailable(make_client, stripe_api) -> None:

    client = await make_client(**{**stripe_settings(stripe_api), "stripe_price_pro": None})
    owner = await signup(client)
    made = await client.post(f"{API}/teams", json={"name": "Crew"}, headers=owner.headers)
    path = f"{API}/teams/{(await made.json())['id']}/billing/checkout"
    response = await client.post(path, json={"plan": "pro"}, headers=owner.headers)
    assert (response.status, await error_code(response)) == (503, "unavailable")
    assert stripe_api.requests == []


async def test_a_stripe_outage_is_unavailable_after_retries_with_one_idempotency_key(
    shop: Shop,
) -> None:
    shop.stripe.fail("POST", CHECKOUT, 500, times=3)
    response = await shop.call(
        "POST", f"/teams/{shop.team_id}/billing/checkout", json={"plan": "pro"}
    )
    assert (response.status, await error_code(response)) == (503, "unavailable")
    attempts = shop.stripe.requests_to("POST", CHECKOUT)
    assert len(attempts) == 3
    assert len({a.headers["Idempotency-Key"] for a in attempts}) == 1
    details = (await response.json())["error"]["details"]
    assert details["stripe_request_id"].startswith("req_")


async def test_a_request_stripe_refuses_is_invalid(shop: Shop) -> None:
    shop.stripe.fail(
        "POST", CHECKOUT, 400, type_="invalid_request_error", message="No such price: 'price_pro'"
    )
    response = await shop.call(
        "POST", f"/teams/{shop.team_id}/billing/checkout", json={"plan": "pro"}
    )
    assert (response.status, await error_code(response)) == (400, "invalid")
    assert "No such price" in (await response.json())["error"]["message"]
    assert len(shop.stripe.requests_to("POST", CHECKOUT)) == 1


async def test_stripe_unreachable_is_unavailable(make_client, database, stripe_api) -> None:

    dead = f"http://127.0.0.1:{free_port()}"
    client = await make_client(**{**stripe_settings(stripe_api), "stripe_api_base": dead})
    owner = await signup(client)
    made = await client.post(f"{API}/teams", json={"name": "Crew"}, headers=owner.headers)
    path = f"{API}/teams/{(await made.json())['id']}/billing/checkout"
    response = await client.post(path, json={"plan": "pro"}, headers=owner.headers)
    assert (response.status, await error_code(response)) == (503, "unavailable")


async def test_the_portal_opens_for_the_teams_customer(shop: Shop) -> None:
    sub = await shop.pay()
    response = await shop.call("POST", f"/teams/{shop.team_id}/billing/portal", "admin")
    assert response.status == 200, await response.text()
    assert (await response.json())["url"].startswith("https://billing.stripe.test/p/session/")
    [sent] = shop.stripe.requests_to("POST", PORTAL)
    assert sent.form["customer"] == sub["customer"]
    assert sent.form["return_url"] == f"https://roomcast.test/teams/{shop.team_id}/billing"
    assert sent.headers["Idempotency-Key"]


@pytest.mark.parametrize(
    ("who", "status"), [("member", 403), ("outsider", 404), ("anonymous", 401)]
)
async def test_the_portal_is_for_owners_and_admins(shop: Shop, who: str, status: int) -> None:
    await shop.pay()
    response = await shop.call("POST", f"/teams/{shop.team_id}/billing/portal", who)
    assert response.status == status
    assert shop.stripe.requests_to("POST", PORTAL) == []


async def test_the_portal_needs_a_team_that_has_paid_before(shop: Shop) -> None:
    response = await shop.call("POST", f"/teams/{shop.team_id}/billing/portal")
    assert (response.status, await error_code(response)) == (409, "conflict")
    assert shop.stripe.requests_to("POST", PORTAL) == []


def _updated(sub: dict) -> dict:
    return event("customer.subscription.updated", dict(sub))
