"""TOTP state on the user row and the hashed single-use backup codes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import BackupCode, User


@dataclass(frozen=True, slots=True)
class TotpState:
    secret: str | None
    enabled: bool
    last_step: int | None


async def state(session: AsyncSession, user_id: str) -> TotpState | None:
    row = await session.get(User, user_id)
    if row is None:
        return None
    return TotpState(row.totp_secret, row.totp_enabled, row.totp_last_step)


async def set_pending_secret(session: AsyncSession, user_id: str, secret: str) -> bool:
    """Store a secret awaiting confirmation; False when 2FA is already enabled."""
    result = await session.execute(
        update(User)
        .where(User.id == user_id, User.totp_enabled.is_(False))
        .values(totp_secret=secret, totp_last_step=None)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def advance_step(session: AsyncSession, user_id: str, step: int) -> bool:
    """Record `step` as used; False when it (or a later one) was used before.

    A single conditional UPDATE, so one code cannot be accepted twice even concurrently.
    """
    result = await session.execute(
        update(User)
        .where(
            User.id == user_id,
            or_(User.totp_last_step.is_(None), User.totp_last_step < step),
        )
        .values(totp_last_step=step)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def enable(session: AsyncSession, user_id: str, backup_code_hashes: list[str]) -> bool:
    """Turn 2FA on with a fresh set of backup codes; False when it already was on."""
    result = await session.execute(
        update(User)
        .where(User.id == user_id, User.totp_enabled.is_(False), User.totp_secret.is_not(None))
        .values(totp_enabled=True)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    await session.execute(delete(BackupCode).where(BackupCode.user_id == user_id))
    session.add_all(BackupCode(user_id=user_id, code_hash=h) for h in backup_code_hashes)
    await session.flush()
    return True


async def disable(session: AsyncSession, user_id: str) -> None:
    await session.execute(
        update(User)
        .where(User.id == user_id)
        .values(totp_enabled=False, totp_secret=None, totp_last_step=None)
    )
    await session.execute(delete(BackupCode).where(BackupCode.user_id == user_id))


async def spend_backup_code(
    session: AsyncSession, user_id: str, code_hash: str, now: datetime
) -> bool:
    """Use one backup code; False when it does not exist or was used already."""
    result = await session.execute(
        update(BackupCode)
        .where(
            BackupCode.user_id == user_id,
            BackupCode.code_hash == code_hash,
            BackupCode.used_at.is_(None),
        )
        .values(used_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
