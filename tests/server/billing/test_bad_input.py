"""Hostile input on every billing endpoint: 400 `invalid` (404 for ids), nothing sent or stored."""

from __future__ import annotations

import json

import pytest

from tests.fakes.stripe_api import event
from tests.server.billing.conftest import API, Shop, billing_rows, error_code, signed

MALFORMED = [b"not json", b"{'plan': 'pro'}", b"[1, 2]", b'"pro"', b"null", b"\xff\xfe"]
BAD_CHECKOUTS = [
    {},
    {"plan": "gold"},
    {"plan": "basic"},
    {"plan": "PRO"},
    {"plan": 1},
    {"plan": None},
    {"plan": ["pro"]},
    {"plan": "pro", "price": "price_free"},
    {"plan": "pro", "team_id": "someone-else"},
]


async def _invalid(response) -> bool:
    return (response.status, await error_code(response)) == (400, "invalid")


async def test_bad_checkout_bodies_are_invalid_and_reach_no_stripe(shop: Shop) -> None:
    path = f"/teams/{shop.team_id}/billing/checkout"
    for raw in [*MALFORMED, b""]:
        assert await _invalid(await shop.call("POST", path, data=raw)), raw
    for body in BAD_CHECKOUTS:
        assert await _invalid(await shop.call("POST", path, json=body)), body
    fields = (await (await shop.call("POST", path, json={"plan": "gold"})).json())["error"]
    assert "plan" in fields["details"]["fields"]
    assert shop.stripe.requests == []


async def test_bad_portal_bodies_are_invalid_and_an_empty_one_is_fine(shop: Shop) -> None:
    await shop.pay()
    path = f"/teams/{shop.team_id}/billing/portal"
    for raw in MALFORMED:
        assert await _invalid(await shop.call("POST", path, data=raw)), raw
    assert await _invalid(await shop.call("POST", path, json={"customer": "cus_evil"}))
    assert shop.stripe.requests_to("POST", "/v1/billing_portal/sessions") == []
    assert (await shop.call("POST", path, json={})).status == 200
    assert (await shop.call("POST", path)).status == 200


@pytest.mark.parametrize(
    "path",
    ["/teams/{id}/subscription", "/teams/{id}/billing/checkout", "/teams/{id}/billing/portal"],
)
async def test_unknown_or_malformed_team_ids_are_not_found(shop: Shop, path: str) -> None:
    method = "GET" if path.endswith("subscription") else "POST"
    for team_id in ("nope", "00000000-0000-0000-0000-000000000000", "%27%20OR%201=1"):
        response = await shop.call(method, path.format(id=team_id), json={"plan": "pro"})
        assert (response.status, await error_code(response)) == (404, "not_found"), team_id


async def test_signed_bodies_that_are_not_stripe_events_are_invalid(shop: Shop) -> None:
    bodies = [
        "not json",
        "[1, 2]",
        json.dumps({"id": "evt_1", "type": "invoice.paid"}),
        json.dumps({"id": "evt_2", "type": "invoice.paid", "created": 1, "data": {"object": 5}}),
        json.dumps({**event("invoice.paid", {}), "created": "yesterday"}),
    ]
    for body in bodies:
        response = await shop.client.post(f"{API}/webhooks/stripe", data=body, headers=signed(body))
        assert await _invalid(response), body
    assert await billing_rows(shop.database) == {
        "stripe_events": 0,
        "subscriptions": 0,
        "customers": 0,
    }


async def test_a_webhook_body_that_is_not_utf8_is_invalid(shop: Shop) -> None:
    body = b'{"id": "\xff"}'
    headers = signed(body.decode("latin-1"))
    response = await shop.client.post(f"{API}/webhooks/stripe", data=body, headers=headers)
    assert await _invalid(response)
