"""Refresh tokens: stored as their SHA-256, rotated within a family, revoked by family or user.

The refresh tokens are also the durable record of which sign-ins (families) are revoked,
which access tokens check through their `sid` (storage/revoked_families.py caches it).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from storage.models import RefreshToken


class Spent(enum.Enum):
    """How presenting a refresh token went."""

    OK = "ok"  # it was live and is now spent
    UNKNOWN = "unknown"  # no such token, or it expired
    REUSED = "reused"  # it was already spent or revoked: its family is now revoked


@dataclass(frozen=True, slots=True)
class SpendResult:
    outcome: Spent
    user_id: str | None = None
    family_id: str | None = None


async def add(
    session: AsyncSession,
    *,
    user_id: str,
    family_id: str,
    token_hash: str,
    expires_at: datetime,
) -> None:
    session.add(
        RefreshToken(
            user_id=user_id, family_id=family_id, token_hash=token_hash, expires_at=expires_at
        )
    )
    await session.flush()


async def spend(session: AsyncSession, token_hash: str, now: datetime) -> SpendResult:
    """Mark the token spent; a token presented a second time revokes its whole family.

    The row is locked (FOR UPDATE) so two concurrent presentations of one token
    cannot both succeed: the second one sees it spent and counts as reuse.
    """
    result = await session.execute(
        select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
    )
    row = result.scalar_one_or_none()
    if row is None:
        return SpendResult(Spent.UNKNOWN)
    if row.used_at is not None or row.revoked_at is not None:
        await revoke_family(session, row.family_id, now)
        return SpendResult(Spent.REUSED, row.user_id, row.family_id)
    if row.expires_at <= now:
        return SpendResult(Spent.UNKNOWN)
    row.used_at = now
    await session.flush()
    return SpendResult(Spent.OK, row.user_id, row.family_id)


async def family_of(session: AsyncSession, token_hash: str) -> tuple[str, str] | None:
    """(user id, family id) of a token, spent or not."""
    result = await session.execute(
        select(RefreshToken.user_id, RefreshToken.family_id).where(
            RefreshToken.token_hash == token_hash
        )
    )
    row = result.one_or_none()
    return None if row is None else (row[0], row[1])


async def revoke_family(session: AsyncSession, family_id: str, now: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def revoke_user(
    session: AsyncSession, user_id: str, now: datetime, *, keep_family: str | None = None
) -> None:
    """Revoke every refresh token of the user, except those of `keep_family`."""
    statement = update(RefreshToken).where(
        RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None)
    )
    if keep_family is not None:
        statement = statement.where(RefreshToken.family_id != keep_family)
    await session.execute(statement.values(revoked_at=now))


_TOKENS = RefreshToken.__table__.c
_FAMILY_REVOKED = select(
    exists().where(_TOKENS.family_id == bindparam("family_id"), _TOKENS.revoked_at.is_not(None))
)


async def family_revoked(connection: AsyncConnection, family_id: str) -> bool:
    """Whether the family was revoked (logout, reuse, logout-all, password change).

    One revoked token is enough: `revoke_family` marks them all, but a token added by a
    rotation that committed while the revocation ran can escape its UPDATE. A Core select
    on a plain (autocommit) connection: access token checks read it on every cache miss.
    """
    result = await connection.execute(_FAMILY_REVOKED, {"family_id": family_id})
    return bool(result.scalar())


async def prune_expired(session: AsyncSession, before: datetime, *, limit: int = 500) -> None:
    """Delete up to `limit` tokens that expired before `before`.

    Callers pass `now - access token lifetime`: a family's row outlives every access
    token issued with it, so a revoked family stays revoked while any of them could be
    presented. Rows another transaction holds are skipped (PostgreSQL), so concurrent
    writers never wait on each other here.
    """
    expired = (
        select(RefreshToken.id)
        .where(RefreshToken.expires_at < before)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = delete(RefreshToken).where(RefreshToken.id.in_(expired))
    await session.execute(statement.execution_options(synchronize_session=False))
