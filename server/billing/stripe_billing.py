"""`Billing` on the stripe SDK's async client.

Stripe failures become protocol errors here: no answer or a 5xx (and our own key being
refused or rate limited) is 503 `unavailable`, any other refusal is 400 `invalid`. Each is
logged with Stripe's request id, which is what Stripe support asks for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import stripe
from stripe.params.checkout import SessionCreateParams

from errors import Invalid, RoomcastError, Unavailable
from server.billing.api import StripeSubscription
from server.config import Settings

logger = logging.getLogger(__name__)

NOT_CONFIGURED = "billing is not configured"
# Errors that say nothing about the request itself: our key, our rate, Stripe's health.
_PROVIDER_TROUBLE = (
    stripe.APIConnectionError,
    stripe.AuthenticationError,
    stripe.PermissionError,
    stripe.RateLimitError,
)


def _translate(exc: stripe.StripeError, action: str) -> RoomcastError:
    status = exc.http_status
    details = {"stripe_request_id": exc.request_id} if exc.request_id else None
    if isinstance(exc, _PROVIDER_TROUBLE) or status is None or status >= 500:
        logger.warning(
            "stripe %s failed: %s status=%s request_id=%s",
            action,
            type(exc).__name__,
            status,
            exc.request_id,
        )
        return Unavailable("the payment provider is unavailable", details=details)
    logger.warning(
        "stripe %s refused: %s status=%s request_id=%s message=%s",
        action,
        type(exc).__name__,
        status,
        exc.request_id,
        exc.user_message,
    )
    message = exc.user_message or "the request was refused"
    return Invalid(f"the payment provider refused the request: {message}", details=details)


@contextmanager
def _stripe_errors(action: str) -> Iterator[None]:
    try:
        yield
    except stripe.StripeError as exc:
        raise _translate(exc, action) from None


class StripeBilling:
    """The pro plan sold through Stripe Checkout, managed in the Billing Portal."""

    def __init__(self, settings: Settings, *, max_network_retries: int = 2) -> None:
        if not settings.stripe_secret_key:
            raise ValueError("StripeBilling needs STRIPE_SECRET_KEY")
        base = {"api": settings.stripe_api_base} if settings.stripe_api_base else None
        self._http = stripe.AIOHTTPClient()
        self._client = stripe.StripeClient(
            settings.stripe_secret_key,
            base_addresses=base,  # type: ignore[arg-type]
            max_network_retries=max_network_retries,
            http_client=self._http,
        )
        self._price = settings.stripe_price_pro
        self._public_url = settings.public_url

    async def checkout_url(
        self, *, team_id: str, customer_id: str | None, email: str | None
    ) -> str:
        if self._price is None:
            raise Unavailable(NOT_CONFIGURED)
        page = f"{self._public_url}/teams/{team_id}/billing"
        params: SessionCreateParams = {
            "mode": "subscription",
            "line_items": [{"price": self._price, "quantity": 1}],
            "client_reference_id": team_id,
            "subscription_data": {"metadata": {"team_id": team_id}},
            "success_url": f"{page}?checkout=success&session_id={{CHECKOUT_SESSION_ID}}",
            "cancel_url": f"{page}?checkout=canceled",
        }
        if customer_id is not None:
            params["customer"] = customer_id
        elif email is not None:
            params["customer_email"] = email
        with _stripe_errors("checkout"):
            session = await self._client.v1.checkout.sessions.create_async(params)
        logger.info("checkout session %s for team %s", session.id, team_id)
        return _url(session.url, "checkout")

    async def portal_url(self, *, team_id: str, customer_id: str) -> str:
        return_url = f"{self._public_url}/teams/{team_id}/billing"
        with _stripe_errors("portal"):
            session = await self._client.v1.billing_portal.sessions.create_async(
                {"customer": customer_id, "return_url": return_url}
            )
        return _url(session.url, "portal")

    async def subscription(self, subscription_id: str) -> StripeSubscription | None:
        with _stripe_errors("subscription retrieve"):
            try:
                found = await self._client.v1.subscriptions.retrieve_async(subscription_id)
            except stripe.InvalidRequestError as exc:
                if exc.http_status != 404:
                    raise
                logger.warning("stripe does not know subscription %s", subscription_id)
                return None
        return StripeSubscription.from_json(found.to_dict())

    async def subscriptions_of(self, customer_id: str) -> list[StripeSubscription]:
        found: list[StripeSubscription] = []
        with _stripe_errors("subscription list"):
            page = await self._client.v1.subscriptions.list_async(
                {"customer": customer_id, "status": "all", "limit": 100}
            )
            async for item in page.auto_paging_iter():
                found.append(StripeSubscription.from_json(_as_dict(item)))
        return found

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]


def _url(value: str | None, what: str) -> str:
    if not value:
        raise Unavailable(f"the payment provider returned no {what} URL")
    return value


def _as_dict(item: Any) -> dict[str, Any]:
    data: dict[str, Any] = item.to_dict()
    return data
