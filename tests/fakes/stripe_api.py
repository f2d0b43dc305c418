"""A local Stripe API: customers, Checkout and Billing Portal sessions, subscriptions.

It speaks the wire format the stripe SDK uses, so tests drive the real SDK against it:
form-encoded request bodies with bracketed keys (`line_items[0][price]=price_pro`),
JSON answers in Stripe's object shapes, errors as `{"error": {"type", "message", ...}}`
with a `Request-Id` header, `Authorization: Bearer sk_...` required. Every request is
recorded (method, path, query, decoded form, headers) for assertions, and failures can be
scripted per endpoint:

    fake.fail("POST", "/v1/checkout/sessions", 500, times=3)

Subscriptions are kept as Stripe returns them for current API versions, with
`current_period_end` on the items; `legacy_periods = True` puts it on the subscription
instead, as API versions before 2025-03-31 did.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

MONTH = 30 * 24 * 3600
FORM = web.RequestKey("form", dict)
_KEY_PART = re.compile(r"\[([^\]]*)\]")


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, Any]
    headers: dict[str, str]


@dataclass
class _Failure:
    status: int
    body: dict[str, Any]
    times: int
    headers: dict[str, str] = field(default_factory=dict)


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's nested form keys back into objects: `a[b][0][c]=v` -> {"a": {"b": [{"c": v}]}}."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head = key.split("[", 1)[0]
        parts = [head, *_KEY_PART.findall(key[len(head) :])]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _lists(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def stripe_error(
    status: int, message: str, *, type_: str = "invalid_request_error", code: str | None = None
) -> web.Response:
    error: dict[str, Any] = {"type": type_, "message": message}
    if code is not None:
        error["code"] = code
    return web.json_response({"error": error}, status=status)


def event(type_: str, obj: dict[str, Any], *, created: int | None = None, id_: str = "") -> dict:
    """A webhook event as Stripe sends it (a snapshot event around `obj`)."""
    return {
        "id": id_ or f"evt_{next(_event_ids)}_{int(time.time() * 1000)}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()) if created is None else created,
        "type": type_,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": obj},
    }


_event_ids = itertools.count(1)


class FakeStripe:
    """The fake API's state, its recorded requests and its scripted failures."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.customers: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.legacy_periods = False
        self.url = ""
        self._ids = itertools.count(1)
        self._failures: dict[tuple[str, str], deque[_Failure]] = defaultdict(deque)
        self._runner: web.AppRunner | None = None

    # -- running -------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(middlewares=[self._record])
        app.router.add_post("/v1/customers", self._create_customer)
        app.router.add_post("/v1/checkout/sessions", self._create_checkout)
        app.router.add_post("/v1/billing_portal/sessions", self._create_portal)
        app.router.add_get("/v1/subscriptions", self._list_subscriptions)
        app.router.add_get("/v1/subscriptions/{id}", self._get_subscription)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- scripting and inspection --------------------------------------------------------

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        *,
        type_: str = "api_error",
        message: str = "Something went wrong on Stripe's end.",
        times: int = 1,
    ) -> None:
        """The next `times` requests to `method path` answer `status` with Stripe's error JSON."""
        body = {"error": {"type": type_, "message": message}}
        self._failures[(method, path)].append(_Failure(status, body, times))

    def requests_to(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if (r.method, r.path) == (method, path)]

    # -- state for tests -----------------------------------------------------------------

    def add_customer(self, email: str | None = None) -> str:
        customer_id = self._id("cus")
        self.customers[customer_id] = {
            "id": customer_id,
            "object": "customer",
            "email": email,
            "created": int(time.time()),
            "metadata": {},
        }
        return customer_id

    def add_subscription(
        self,
        customer_id: str,
        *,
        team_id: str | None,
        status: str = "active",
        period_end: int | None = None,
        cancel_at_period_end: bool = False,
        price: str = "price_pro",
    ) -> dict[str, Any]:
        now = int(time.time())
        sub_id = self._id("sub")
        item = {
            "id": self._id("si"),
            "object": "subscription_item",
            "price": {"id": price, "object": "price", "recurring": {"interval": "month"}},
            "quantity": 1,
            "subscription": sub_id,
            "created": now,
            "metadata": {},
        }
        self.subscriptions[sub_id] = {
            "id": sub_id,
            "object": "subscription",
            "customer": customer_id,
            "status": status,
            "cancel_at_period_end": cancel_at_period_end,
            "canceled_at": None,
            "created": now,
            "start_date": now,
            "currency": "usd",
            "livemode": False,
            "metadata": {} if team_id is None else {"team_id": team_id},
            "items": {"object": "list", "data": [item], "has_more": False},
            "latest_invoice": None,
        }
        self.set_period(sub_id, now, period_end or now + MONTH)
        return self.subscriptions[sub_id]

    def set_period(self, sub_id: str, start: int, end: int) -> None:
        sub = self.subscriptions[sub_id]
        holders = [sub] if self.legacy_periods else sub["items"]["data"]
        for holder in holders:
            holder["current_period_start"], holder["current_period_end"] = start, end

    def update_subscription(self, sub_id: str, **changes: Any) -> dict[str, Any]:
        sub = self.subscriptions[sub_id]
        sub.update(changes)
        if changes.get("status") == "canceled":
            sub["canceled_at"] = sub.get("canceled_at") or int(time.time())
        return sub

    def complete_checkout(self, session_id: str) -> dict[str, Any]:
        """Pay the session: its customer and an active subscription come into being.
        Returns the session as `checkout.session.completed` carries it."""
        session = self.sessions[session_id]
        customer_id = session["customer"] or self.add_customer(session["customer_email"])
        metadata = session["_subscription_data"].get("metadata", {})
        sub = self.add_subscription(customer_id, team_id=metadata.get("team_id"))
        sub["metadata"] = dict(metadata)
        session.update(
            customer=customer_id, subscription=sub["id"], status="complete", payment_status="paid"
        )
        return {k: v for k, v in session.items() if not k.startswith("_")}

    def invoice(self, sub_id: str, *, status: str = "open") -> dict[str, Any]:
        """An invoice of the subscription, in the current API shape (`parent`)."""
        sub = self.subscriptions[sub_id]
        return {
            "id": self._id("in"),
            "object": "invoice",
            "customer": sub["customer"],
            "status": status,
            "billing_reason": "subscription_cycle",
            "parent": {
                "type": "subscription_details",
                "subscription_details": {"subscription": sub_id, "metadata": sub["metadata"]},
            },
            "created": int(time.time()),
        }

    # -- the API -------------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        return f"{prefix}_test_{next(self._ids):06d}"

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        pairs = list((await request.post()).items()) if request.method == "POST" else []
        request[FORM] = form = decode_form([(k, str(v)) for k, v in pairs])
        self.requests.append(
            Recorded(request.method, request.path, dict(request.query), form, dict(request.headers))
        )
        request_id = f"req_{next(self._ids):06d}"
        if not request.headers.get("Authorization", "").startswith("Bearer sk_"):
            response: web.StreamResponse = stripe_error(
                401, "Invalid API Key provided", type_="invalid_request_error"
            )
        else:
            response = self._scripted(request) or await handler(request)
        response.headers["Request-Id"] = request_id
        return response

    def _scripted(self, request: web.Request) -> web.Response | None:
        queue = self._failures.get((request.method, request.path))
        if not queue:
            return None
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.popleft()
        return web.json_response(failure.body, status=failure.status)

    async def _create_customer(self, request: web.Request) -> web.Response:
        form = request[FORM]
        return web.json_response(self.customers[self.add_customer(form.get("email"))])

    async def _create_checkout(self, request: web.Request) -> web.Response:
        form = request[FORM]
        missing = [k for k in ("mode", "success_url") if k not in form]
        if missing:
            return stripe_error(
                400, f"Missing required param: {missing[0]}.", code="parameter_missing"
            )
        customer = form.get("customer")
        if customer is not None and customer not in self.customers:
            return stripe_error(400, f"No such customer: '{customer}'", code="resource_missing")
        session_id = self._id("cs")
        self.sessions[session_id] = {
            "id": session_id,
            "object": "checkout.session",
            "url": f"https://checkout.stripe.test/c/pay/{session_id}",
            "mode": form["mode"],
            "status": "open",
            "payment_status": "unpaid",
            "client_reference_id": form.get("client_reference_id"),
            "customer": customer,
            "customer_email": form.get("customer_email"),
            "subscription": None,
            "metadata": form.get("metadata", {}),
            "success_url": form["success_url"],
            "cancel_url": form.get("cancel_url"),
            "_subscription_data": form.get("subscription_data", {}),
        }
        return web.json_response(
            {k: v for k, v in self.sessions[session_id].items() if not k.startswith("_")}
        )

    async def _create_portal(self, request: web.Request) -> web.Response:
        form = request[FORM]
        customer = form.get("customer")
        if customer not in self.customers:
            return stripe_error(400, f"No such customer: '{customer}'", code="resource_missing")
        session_id = self._id("bps")
        return web.json_response(
            {
                "id": session_id,
                "object": "billing_portal.session",
                "url": f"https://billing.stripe.test/p/session/{session_id}",
                "customer": customer,
                "return_url": form.get("return_url"),
                "created": int(time.time()),
                "livemode": False,
            }
        )

    async def _get_subscription(self, request: web.Request) -> web.Response:
        sub = self.subscriptions.get(request.match_info["id"])
        if sub is None:
            message = f"No such subscription: '{request.match_info['id']}'"
            return stripe_error(404, message, code="resource_missing")
        return web.json_response(sub)

    async def _list_subscriptions(self, request: web.Request) -> web.Response:
        customer, status = request.query.get("customer"), request.query.get("status")
        found = [
            sub
            for sub in self.subscriptions.values()
            if (customer is None or sub["customer"] == customer)
            and (
                status == "all"
                or sub["status"] == status
                or (status is None and sub["status"] != "canceled")
            )
        ]
        found.sort(key=lambda sub: sub["created"], reverse=True)
        return web.json_response(
            {"object": "list", "data": found, "has_more": False, "url": "/v1/subscriptions"}
        )
