"""Users and their personal team; the account fields login and lockout need."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from errors import Conflict
from storage.models import Team, TeamMember, User
from storage.timestamps import rfc3339


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user as the rest of the code sees it (no password hash, no TOTP secret)."""

    id: str
    email: str | None
    phone: str | None
    name: str
    role: str
    totp_enabled: bool
    token_version: int
    created_at: datetime

    @classmethod
    def of(cls, row: User) -> UserRecord:
        return cls(
            id=row.id,
            email=row.email,
            phone=row.phone,
            name=row.name,
            role=row.role,
            totp_enabled=row.totp_enabled,
            token_version=row.token_version,
            created_at=row.created_at,
        )

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def to_json(self) -> dict[str, Any]:
        """docs/protocol.md's `user` object."""
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "role": self.role,
            "totp_enabled": self.totp_enabled,
            "created_at": rfc3339(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class Credentials:
    """What login checks: the user, their password hash and lockout state."""

    user: UserRecord
    password_hash: str | None
    locked_until: datetime | None
    failed_logins: int


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def create_user(
    session: AsyncSession,
    *,
    email: str | None,
    name: str,
    password_hash: str | None,
    role: str = "user",
    phone: str | None = None,
) -> UserRecord:
    """Insert a user and their personal team (they are its owner).

    Raises:
        Conflict: the email or phone is taken.
    """
    user = User(
        email=normalize_email(email) if email else None,
        phone=phone,
        name=name,
        password_hash=password_hash,
        role=role,
    )
    team = Team(name=f"{name}'s team", personal=True)
    session.add_all([user, team])
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("an account with this email or phone already exists") from None
    session.add(TeamMember(team_id=team.id, user_id=user.id, role="owner"))
    await session.flush()
    return UserRecord.of(user)


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.execute(select(User).where(User.email == normalize_email(email)))
    return result.scalar_one_or_none()


async def get(session: AsyncSession, user_id: str) -> UserRecord | None:
    row = await session.get(User, user_id)
    return None if row is None else UserRecord.of(row)


_HOLDER_COLUMNS = (
    User.__table__.c.id,
    User.__table__.c.email,
    User.__table__.c.phone,
    User.__table__.c.name,
    User.__table__.c.role,
    User.__table__.c.totp_enabled,
    User.__table__.c.token_version,
    User.__table__.c.created_at,
)
_TOKEN_HOLDER = select(*_HOLDER_COLUMNS).where(User.__table__.c.id == bindparam("user_id"))


async def token_holder(connection: AsyncConnection, user_id: str) -> UserRecord | None:
    """`get` for the token check on every connect: one Core select on a plain connection
    (an autocommit one: no BEGIN, no ORM identity map), the same record."""
    result = await connection.execute(_TOKEN_HOLDER, {"user_id": user_id})
    row = result.one_or_none()
    return None if row is None else UserRecord(*row)


async def find_by_email(session: AsyncSession, email: str) -> UserRecord | None:
    row = await get_by_email(session, email)
    return None if row is None else UserRecord.of(row)


async def find_by_phone(session: AsyncSession, phone: str) -> UserRecord | None:
    result = await session.execute(select(User).where(User.phone == phone))
    row = result.scalar_one_or_none()
    return None if row is None else UserRecord.of(row)


async def credentials_by_email(session: AsyncSession, email: str) -> Credentials | None:
    row = await get_by_email(session, email)
    if row is None:
        return None
    return Credentials(UserRecord.of(row), row.password_hash, row.locked_until, row.failed_logins)


async def credentials(session: AsyncSession, user_id: str) -> Credentials | None:
    row = await session.get(User, user_id)
    if row is None:
        return None
    return Credentials(UserRecord.of(row), row.password_hash, row.locked_until, row.failed_logins)


async def rename(session: AsyncSession, user_id: str, name: str) -> UserRecord | None:
    row = await session.get(User, user_id)
    if row is None:
        return None
    row.name = name
    await session.flush()
    return UserRecord.of(row)


async def set_password_hash(session: AsyncSession, user_id: str, password_hash: str) -> None:
    await session.execute(
        update(User).where(User.id == user_id).values(password_hash=password_hash)
    )


async def bump_token_version(session: AsyncSession, user_id: str) -> int:
    """Add one to the user's token version, which every older access token then fails."""
    result = await session.execute(
        update(User)
        .where(User.id == user_id)
        .values(token_version=User.token_version + 1)
        .returning(User.token_version)
    )
    return int(result.scalar_one())


async def record_failed_login(
    session: AsyncSession,
    user_id: str,
    *,
    now: datetime,
    window: timedelta,
    threshold: int,
    lock_for: timedelta,
) -> datetime | None:
    """Count one failed login in the current window; lock when it reaches `threshold`.

    One UPDATE, so concurrent failures are all counted. Returns the new `locked_until`
    when this failure locked the account.
    """
    fresh = (User.failed_window_start.is_(None)) | (User.failed_window_start < now - window)
    result = await session.execute(
        update(User)
        .where(User.id == user_id)
        .values(
            failed_logins=case((fresh, 1), else_=User.failed_logins + 1),
            failed_window_start=case((fresh, now), else_=User.failed_window_start),
        )
        .returning(User.failed_logins)
    )
    if int(result.scalar_one()) < threshold:
        return None
    locked_until = now + lock_for
    await session.execute(
        update(User)
        .where(User.id == user_id)
        .values(locked_until=locked_until, failed_logins=0, failed_window_start=None)
    )
    return locked_until


async def clear_failed_logins(session: AsyncSession, user_id: str) -> None:
    await session.execute(
        update(User)
        .where(User.id == user_id)
        .values(failed_logins=0, failed_window_start=None, locked_until=None)
    )


async def count(session: AsyncSession) -> int:
    result = await session.execute(select(func.count()).select_from(User))
    return int(result.scalar_one())
