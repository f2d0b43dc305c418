"""Stripe webhook event ids already applied, so that each event is applied once."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import StripeEvent


async def seen(session: AsyncSession, event_id: str) -> bool:
    return (
        await session.scalar(select(StripeEvent.id).where(StripeEvent.id == event_id)) is not None
    )


async def record(session: AsyncSession, event_id: str, event_type: str) -> bool:
    """Record the event as applied in the caller's transaction; False when it already was.

    On False the transaction is spoiled (a concurrent delivery committed first): roll back.
    """
    now = datetime.now(UTC)
    session.add(StripeEvent(id=event_id, type=event_type, received_at=now, processed_at=now))
    try:
        await session.flush()
    except IntegrityError:
        return False
    return True
