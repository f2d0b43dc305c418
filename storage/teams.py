"""Teams and their members, with the one rule storage itself keeps: a team always has an owner.

Who may do what to whom is decided by `server/authz.py`; the functions here carry it out
and turn what only the database can see (a concurrent demotion of the other owner, an
existing membership) into protocol errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar, cast

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from errors import Conflict, NotFound
from storage.models import Team, TeamMember, User
from storage.pagination import Page, decode_time_cursor, time_cursor
from storage.timestamps import rfc3339


class _Joined(Protocol):
    @property
    def joined_at(self) -> datetime: ...


J = TypeVar("J", bound=_Joined)

Role = Literal["owner", "admin", "member"]
_RANK: dict[str, int] = {"member": 0, "admin": 1, "owner": 2}


def role_at_least(role: Role, minimum: Role) -> bool:
    """Whether `role` is `minimum` or above it (owner > admin > member)."""
    return _RANK[role] >= _RANK[minimum]


@dataclass(frozen=True, slots=True)
class TeamRecord:
    id: str
    name: str
    personal: bool
    created_at: datetime

    @classmethod
    def of(cls, row: Team) -> TeamRecord:
        return cls(row.id, row.name, row.personal, row.created_at)


@dataclass(frozen=True, slots=True)
class Membership:
    """A user's place in a team: what the access guard hands to handlers."""

    team: TeamRecord
    user_id: str
    role: Role
    joined_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The team as its member sees it: docs/protocol.md's `team`, with the caller's `role`."""
        return {
            "id": self.team.id,
            "name": self.team.name,
            "personal": self.team.personal,
            "role": self.role,
            "created_at": rfc3339(self.team.created_at),
        }


@dataclass(frozen=True, slots=True)
class Member:
    """A member as the team's other members see them (no account settings)."""

    user_id: str
    email: str | None
    name: str
    role: Role
    joined_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "user": {"id": self.user_id, "email": self.email, "name": self.name},
            "role": self.role,
            "joined_at": rfc3339(self.joined_at),
        }


def _membership(team: Team, member: TeamMember) -> Membership:
    role = cast(Role, member.role)
    return Membership(TeamRecord.of(team), member.user_id, role, member.joined_at)


def _member(member: TeamMember, user: User) -> Member:
    return Member(user.id, user.email, user.name, cast(Role, member.role), member.joined_at)


async def create(session: AsyncSession, *, name: str, owner_id: str) -> Membership:
    """A new (non-personal) team with `owner_id` as its owner."""
    team = Team(name=name, personal=False)
    session.add(team)
    await session.flush()
    member = TeamMember(team_id=team.id, user_id=owner_id, role="owner")
    session.add(member)
    await session.flush()
    return _membership(team, member)


async def membership(session: AsyncSession, team_id: str, user_id: str) -> Membership | None:
    """The user's membership of the team; None when either does not exist or they are apart."""
    result = await session.execute(
        select(Team, TeamMember)
        .join(TeamMember, TeamMember.team_id == Team.id)
        .where(Team.id == team_id, TeamMember.user_id == user_id)
    )
    row = result.one_or_none()
    return None if row is None else _membership(row[0], row[1])


def _in_join_order(query: Any, tiebreak: Any, cursor: str | None, limit: int) -> Any:
    """Keyset paging by (joined_at, tiebreak): `limit` + 1 rows after `cursor`, so the
    caller can tell whether another page follows.

    Raises:
        Invalid: `cursor` is not one this list handed out.
    """
    query = query.order_by(TeamMember.joined_at, tiebreak).limit(limit + 1)
    if cursor is not None:
        joined_at, key = decode_time_cursor(cursor)
        query = query.where(
            or_(
                TeamMember.joined_at > joined_at,
                and_(TeamMember.joined_at == joined_at, tiebreak > key),
            )
        )
    return query


def _page(items: list[J], limit: int, key: Callable[[J], str]) -> Page[J]:
    """The first `limit` items, and the cursor after the last one when more follow."""
    if len(items) <= limit:
        return Page(items, None)
    items = items[:limit]
    return Page(items, time_cursor(items[-1].joined_at, key(items[-1])))


async def list_for_user(
    session: AsyncSession, user_id: str, *, limit: int, cursor: str | None = None
) -> Page[Membership]:
    """The user's teams in the order they joined them, `limit` at a time.

    Raises:
        Invalid: `cursor` is not one this list handed out.
    """
    query = (
        select(Team, TeamMember)
        .join(TeamMember, TeamMember.team_id == Team.id)
        .where(TeamMember.user_id == user_id)
    )
    rows = (await session.execute(_in_join_order(query, TeamMember.team_id, cursor, limit))).all()
    items = [_membership(team, member) for team, member in rows]
    return _page(items, limit, lambda membership: membership.team.id)


async def rename(session: AsyncSession, team_id: str, name: str) -> None:
    await session.execute(
        update(Team)
        .where(Team.id == team_id)
        .values(name=name)
        .execution_options(synchronize_session=False)
    )


async def delete_team(session: AsyncSession, team_id: str) -> None:
    """Delete the team; its members, invitations, rooms and messages go with it.

    Raises:
        Conflict: it is a personal team, which lives as long as its user.
    """
    team = await session.get(Team, team_id)
    if team is None:
        raise NotFound("no such team")
    if team.personal:
        raise Conflict("a personal team cannot be deleted")
    await session.execute(delete(Team).where(Team.id == team_id))


async def list_members(
    session: AsyncSession, team_id: str, *, limit: int, cursor: str | None = None
) -> Page[Member]:
    """The team's members in the order they joined, `limit` at a time.

    Raises:
        Invalid: `cursor` is not one this list handed out.
    """
    query = (
        select(TeamMember, User)
        .join(User, User.id == TeamMember.user_id)
        .where(TeamMember.team_id == team_id)
    )
    rows = (await session.execute(_in_join_order(query, TeamMember.user_id, cursor, limit))).all()
    return _page([_member(member, user) for member, user in rows], limit, lambda m: m.user_id)


async def lock_member(session: AsyncSession, team_id: str, user_id: str) -> Member:
    """The member, with the team locked until commit so role changes apply one at a time.

    Raises:
        NotFound: the user is not a member of the team.
    """
    await session.execute(select(Team.id).where(Team.id == team_id).with_for_update())
    result = await session.execute(
        select(TeamMember, User)
        .join(User, User.id == TeamMember.user_id)
        .where(TeamMember.team_id == team_id, TeamMember.user_id == user_id)
    )
    row = result.one_or_none()
    if row is None:
        raise NotFound("no such member")
    return _member(row[0], row[1])


async def set_role(session: AsyncSession, team_id: str, user_id: str, role: Role) -> Member:
    """Give a member `role`. Call `lock_member` first, in the same transaction.

    Raises:
        NotFound: the user is not a member.
        Conflict: this would leave the team without an owner.
    """
    await session.execute(
        update(TeamMember)
        .where(TeamMember.team_id == team_id, TeamMember.user_id == user_id)
        .values(role=role)
        .execution_options(synchronize_session=False)
    )
    await _keep_an_owner(session, team_id, "the last owner cannot be demoted")
    return await lock_member(session, team_id, user_id)


async def remove_member(session: AsyncSession, team_id: str, user_id: str) -> None:
    """Remove a member (or let them leave). Call `lock_member` first, in the same transaction.

    Raises:
        Conflict: they are the last owner (which includes the one member of a personal team).
    """
    await session.execute(
        delete(TeamMember).where(TeamMember.team_id == team_id, TeamMember.user_id == user_id)
    )
    await _keep_an_owner(session, team_id, "the last owner cannot leave the team")


async def add_member(session: AsyncSession, team_id: str, user_id: str, role: Role) -> Membership:
    """Make the user a member with `role`.

    Raises:
        NotFound: no such team.
        Conflict: they are a member already, or it is a personal team.
    """
    team = await session.get(Team, team_id, with_for_update=True)
    if team is None:
        raise NotFound("no such team")
    if team.personal:
        raise Conflict("a personal team has exactly one member")
    if await session.get(TeamMember, (team_id, user_id)) is not None:
        raise Conflict("already a member of this team")
    member = TeamMember(team_id=team_id, user_id=user_id, role=role)
    session.add(member)
    await session.flush()
    return _membership(team, member)


async def _keep_an_owner(session: AsyncSession, team_id: str, message: str) -> None:
    # Counted after the write, under the team lock: the caller's rollback undoes it.
    owners = await session.scalar(
        select(func.count())
        .select_from(TeamMember)
        .where(TeamMember.team_id == team_id, TeamMember.role == "owner")
    )
    if not owners:
        raise Conflict(message)
