"""Team invitations: a single-use token, valid 7 days, stored only as its SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from errors import Conflict, NotFound
from storage import teams
from storage.models import Invitation, Team, TeamMember, User
from storage.teams import Membership, Role
from storage.timestamps import rfc3339
from storage.types import utcnow
from storage.users import normalize_email

INVITATION_TTL = timedelta(days=7)
_MAX_TOKEN = 128  # ours are 43 characters; anything much longer is not one of them


@dataclass(frozen=True, slots=True)
class IssuedInvitation:
    """A new invitation with its token: the only time the token is seen in clear."""

    id: str
    team_id: str
    email: str
    role: Role
    token: str
    expires_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "team_id": self.team_id,
            "email": self.email,
            "role": self.role,
            "token": self.token,
            "expires_at": rfc3339(self.expires_at),
        }


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(
    session: AsyncSession,
    *,
    team_id: str,
    email: str,
    role: Role,
    invited_by: str,
    ttl: timedelta = INVITATION_TTL,
) -> IssuedInvitation:
    """Invite `email` into the team with `role`.

    Raises:
        NotFound: no such team.
        Conflict: it is a personal team, or `email` belongs to a member already.
    """
    team = await session.get(Team, team_id)
    if team is None:
        raise NotFound("no such team")
    if team.personal:
        raise Conflict("a personal team has exactly one member and takes no invitations")
    email = normalize_email(email)
    if await _is_member(session, team_id, email):
        raise Conflict("already a member of this team")
    token = secrets.token_urlsafe(32)
    row = Invitation(
        team_id=team_id,
        email=email,
        role=role,
        token_hash=hash_token(token),
        invited_by=invited_by,
        expires_at=utcnow() + ttl,
    )
    session.add(row)
    await session.flush()
    return IssuedInvitation(row.id, team_id, email, role, token, row.expires_at)


async def accept(
    session: AsyncSession, token: str, *, user_id: str, email: str | None
) -> Membership:
    """Spend the token and make the user a member with the invited role.

    The user's email must be the invited one. An invitation addressed to someone else is
    reported exactly like an unknown token, so a leaked link tells its finder nothing.

    Raises:
        NotFound: unknown, expired or spent token, or an invitation for another email.
        Conflict: the user is a member already (the token stays unspent).
    """
    if len(token) > _MAX_TOKEN:
        raise NotFound("no such invitation")
    row = await session.scalar(select(Invitation).where(Invitation.token_hash == hash_token(token)))
    now = utcnow()
    if row is None or row.accepted_at is not None or row.expires_at <= now:
        raise NotFound("no such invitation")
    if email is None or normalize_email(email) != row.email:
        raise NotFound("no such invitation")
    # Conditional, so two concurrent accepts cannot both spend it.
    spent = await session.execute(
        update(Invitation)
        .where(Invitation.id == row.id, Invitation.accepted_at.is_(None))
        .values(accepted_at=now, accepted_by=user_id)
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound("no such invitation")
    return await teams.add_member(session, row.team_id, user_id, cast(Role, row.role))


async def _is_member(session: AsyncSession, team_id: str, email: str) -> bool:
    found = await session.scalar(
        select(TeamMember.user_id)
        .join(User, User.id == TeamMember.user_id)
        .where(TeamMember.team_id == team_id, User.email == email)
    )
    return found is not None
