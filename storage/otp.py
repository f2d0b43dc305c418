"""One-time codes for passwordless login and password reset, stored as keyed hashes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import OtpCode


@dataclass(frozen=True, slots=True)
class LiveCode:
    id: str
    code_hash: str
    attempts: int


async def replace(
    session: AsyncSession,
    *,
    channel: str,
    destination: str,
    purpose: str,
    code_hash: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    """Store a new code; older live codes for the same destination and purpose stop working."""
    await session.execute(
        update(OtpCode)
        .where(
            OtpCode.destination == destination,
            OtpCode.purpose == purpose,
            OtpCode.consumed_at.is_(None),
        )
        .values(consumed_at=now)
    )
    session.add(
        OtpCode(
            channel=channel,
            destination=destination,
            purpose=purpose,
            code_hash=code_hash,
            expires_at=expires_at,
        )
    )
    await session.flush()


async def take_attempt(
    session: AsyncSession, destination: str, purpose: str, now: datetime, max_attempts: int
) -> LiveCode | None:
    """Count one attempt on the newest live code and return it; None when there is none
    or its attempts are used up. The row is locked so concurrent guesses are all counted."""
    result = await session.execute(
        select(OtpCode)
        .where(
            OtpCode.destination == destination,
            OtpCode.purpose == purpose,
            OtpCode.consumed_at.is_(None),
            OtpCode.expires_at > now,
        )
        .order_by(OtpCode.created_at.desc())
        .limit(1)
        .with_for_update()
    )
    row = result.scalar_one_or_none()
    if row is None or row.attempts >= max_attempts:
        return None
    row.attempts += 1
    await session.flush()
    return LiveCode(row.id, row.code_hash, row.attempts)


async def consume(session: AsyncSession, code_id: str, now: datetime) -> bool:
    """Spend the code; False when someone else spent it first."""
    result = await session.execute(
        update(OtpCode)
        .where(OtpCode.id == code_id, OtpCode.consumed_at.is_(None))
        .values(consumed_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
