"""The outbox table: mail and SMS as sent, readable in development and by tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import OutboxMessage


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    id: str
    channel: str
    destination: str
    subject: str
    body: str
    created_at: datetime


def _record(row: OutboxMessage) -> OutboxRecord:
    return OutboxRecord(row.id, row.channel, row.destination, row.subject, row.body, row.created_at)


async def add(
    session: AsyncSession, *, channel: str, destination: str, subject: str, body: str
) -> OutboxRecord:
    row = OutboxMessage(channel=channel, destination=destination, subject=subject, body=body)
    session.add(row)
    await session.flush()
    return _record(row)


async def list_for(session: AsyncSession, destination: str) -> list[OutboxRecord]:
    """Everything sent to `destination`, oldest first."""
    result = await session.execute(
        select(OutboxMessage)
        .where(OutboxMessage.destination == destination)
        .order_by(OutboxMessage.created_at, OutboxMessage.id)
    )
    return [_record(row) for row in result.scalars()]
