"""Users and their personal team."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from errors import Conflict
from storage.models import Team, TeamMember, User


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
