"""Billing over REST: plans, a team's subscription, checkout and portal, Stripe's webhooks,
and the caller's AI usage.

Checkout and portal are for a team's owners and admins and answer with a Stripe URL to
send the browser to. Without STRIPE_SECRET_KEY (checkout: or STRIPE_PRICE_PRO; webhooks:
or STRIPE_WEBHOOK_SECRET) those endpoints answer 503 `unavailable`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web

from errors import Conflict, TooLarge, Unavailable
from server import authz
from server.auth.guard import CURRENT_USER, require_user
from server.billing.api import Billing
from server.billing.plans import PAID_STATUSES, catalog
from server.billing.reconcile import plan_of_row
from server.billing.services import billing_services
from server.billing.stripe_billing import NOT_CONFIGURED
from server.billing.webhooks import StripeEvent, verify_event
from server.config import PlanLimits
from server.http import shapes
from server.http.json import Body, json_response, parse_body
from server.http.operation import Param, answers
from server.state import BILLING, DATABASE, QUOTAS, SETTINGS, WEBHOOKS
from storage import subscriptions
from storage.subscriptions import SubscriptionRecord
from storage.timestamps import rfc3339

PREFIX = "/api/v1"
_CHUNK = 64 * 1024


class Checkout(Body):
    plan: Literal["pro"]


class NoFields(Body):
    """A body that may be left out, or be `{}`."""


STRIPE_SIGNATURE = Param(
    "Stripe-Signature", {"type": "string"}, "Stripe's signature of the body.", "header", True
)


def _billing(request: web.Request) -> Billing:
    billing = request.app[BILLING]
    if billing is None:
        raise Unavailable(NOT_CONFIGURED)
    return billing


def _subscription_json(
    row: SubscriptionRecord | None, now: datetime, limits: PlanLimits
) -> dict[str, Any]:
    if row is None:  # never paid
        return {
            "plan": "basic",
            "status": "active",
            "current_period_end": None,
            "cancel_at_period_end": False,
        }
    end = row.current_period_end
    return {
        "plan": plan_of_row(row, now, limits),
        "status": row.status,
        "current_period_end": None if end is None else rfc3339(end),
        "cancel_at_period_end": row.cancel_at_period_end,
    }


@answers(200, shapes.Plans, public=True)
async def list_plans(request: web.Request) -> web.Response:
    """The plans on offer; public."""
    plans = catalog(request.app[SETTINGS].plans)
    return json_response([plan.to_json() for plan in plans])


@answers(200, shapes.Subscription)
async def get_subscription(request: web.Request) -> web.Response:
    """The team's plan and subscription, as any member may see it."""
    membership = await authz.team_access(request, request.match_info["team_id"], at_least="member")
    async with request.app[DATABASE].sessions() as session:
        row = await subscriptions.get(session, membership.team.id)
    limits = request.app[SETTINGS].plans
    subscription = _subscription_json(row, datetime.now(UTC), limits)
    subscription["payments_available"] = request.app[BILLING] is not None
    return json_response(subscription)


@answers(200, shapes.RedirectUrl, errors=(403, 409, 503))
async def checkout(request: web.Request) -> web.Response:
    """A Stripe Checkout Session for the pro plan (owners and admins; 409 if already pro)."""
    membership = await authz.team_access(request, request.match_info["team_id"], at_least="admin")
    await parse_body(request, Checkout)
    billing = _billing(request)
    team_id = membership.team.id
    async with request.app[DATABASE].sessions() as session:
        row = await subscriptions.get(session, team_id)
        customer_id = await subscriptions.customer_of(session, team_id)
    if row is not None and (row.status in PAID_STATUSES or row.status == "past_due"):
        raise Conflict("the team already has a pro subscription; manage it in the billing portal")
    email = request[CURRENT_USER].email
    url = await billing.checkout_url(team_id=team_id, customer_id=customer_id, email=email)
    return json_response({"url": url})


@answers(200, shapes.RedirectUrl, errors=(403, 409, 503), body_required=False)
async def portal(request: web.Request) -> web.Response:
    """A Stripe Billing Portal session (owners and admins of a team that has paid before)."""
    membership = await authz.team_access(request, request.match_info["team_id"], at_least="admin")
    if (await request.read()).strip():
        await parse_body(request, NoFields)
    billing = _billing(request)
    async with request.app[DATABASE].sessions() as session:
        customer_id = await subscriptions.customer_of(session, membership.team.id)
    if customer_id is None:
        raise Conflict("the team has no billing account yet: subscribe through checkout first")
    url = await billing.portal_url(team_id=membership.team.id, customer_id=customer_id)
    return json_response({"url": url})


async def _read_limited(request: web.Request, limit: int) -> bytes:
    """The raw body, refused with 413 past `limit` bytes whether or not a length is sent."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"body over {limit} bytes")
    body = bytearray()
    async for chunk in request.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"body over {limit} bytes")
    return bytes(body)


@answers(
    200,
    shapes.WebhookReceipt,
    errors=(503,),
    params=(STRIPE_SIGNATURE,),
    public=True,
    body=StripeEvent,
)
async def stripe_webhook(request: web.Request) -> web.Response:
    """Stripe's events: signature first, then applied once (a repeat answers 200 too)."""
    settings = request.app[SETTINGS]
    webhooks = request.app[WEBHOOKS]
    if webhooks is None or settings.stripe_webhook_secret is None:
        raise Unavailable(NOT_CONFIGURED)
    payload = await _read_limited(request, settings.webhook_max_body_bytes)
    signature = request.headers.get("Stripe-Signature")
    event = verify_event(payload, signature, settings.stripe_webhook_secret)
    outcome = await webhooks.handle(event)
    return json_response({"received": True, "outcome": outcome})


@answers(200, shapes.Usage)
@require_user
async def usage(request: web.Request) -> web.Response:
    """The caller's AI prompts today against the allowance of their best team's plan."""
    found = await request.app[QUOTAS].usage(request[CURRENT_USER].id)
    return json_response(found.to_json())


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(billing_services)
    router = app.router
    router.add_get(f"{PREFIX}/billing/plans", list_plans)
    router.add_get(f"{PREFIX}/teams/{{team_id}}/subscription", get_subscription)
    router.add_post(f"{PREFIX}/teams/{{team_id}}/billing/checkout", checkout)
    router.add_post(f"{PREFIX}/teams/{{team_id}}/billing/portal", portal)
    router.add_post(f"{PREFIX}/webhooks/stripe", stripe_webhook)
    router.add_get(f"{PREFIX}/usage", usage)
