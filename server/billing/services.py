"""Wire billing into the app once storage and the job scheduler are open."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from server.billing.notices import Notices
from server.billing.quotas import Quotas
from server.billing.stripe_billing import StripeBilling
from server.billing.webhooks import Webhooks
from server.state import BILLING, BUS, DATABASE, JOBS, KV, OUTBOX, QUOTAS, SETTINGS, WEBHOOKS

logger = logging.getLogger(__name__)


async def billing_services(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context: runs after `_storage` and `_jobs`, whose resources it uses."""
    settings, database = app[SETTINGS], app[DATABASE]
    app[QUOTAS] = Quotas(app[KV], database, settings.plans)
    billing = StripeBilling(settings) if settings.stripe_secret_key else None
    app[BILLING] = billing
    app[WEBHOOKS] = None
    if billing is not None and settings.stripe_webhook_secret:
        notices = Notices(
            database,
            app[OUTBOX],
            app[BUS],
            app[JOBS],
            public_url=settings.public_url,
            grace_days=settings.plans.past_due_grace_days,
        )
        app[WEBHOOKS] = Webhooks(billing, database, notices, settings.plans)
    logger.info(
        "billing: stripe=%s webhooks=%s",
        "configured" if billing else "off",
        "on" if app[WEBHOOKS] else "off",
    )
    yield
    if billing is not None:
        await billing.close()
