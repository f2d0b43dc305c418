"""Rows for tests, written straight through storage: users, teams, rooms, messages."""

from __future__ import annotations

from itertools import count

from sqlalchemy.ext.asyncio import AsyncSession

from storage import rooms, teams
from storage.db import Database
from storage.messages import Author, NewMessage, append_many
from storage.rooms import AssistantMode, RoomRecord
from storage.teams import Membership, Role
from storage.users import UserRecord, create_user

_numbers = count(1)


async def user(session: AsyncSession, name: str = "Ada") -> UserRecord:
    """A user (with their personal team) under a unique email."""
    return await create_user(
        session, email=f"{name.lower()}-{next(_numbers)}@example.com", name=name, password_hash=None
    )


async def team(session: AsyncSession, owner: UserRecord, name: str = "Crew") -> Membership:
    return await teams.create(session, name=name, owner_id=owner.id)


async def member(session: AsyncSession, team_id: str, who: UserRecord, role: Role) -> None:
    await teams.add_member(session, team_id, who.id, role)


async def room(
    session: AsyncSession,
    team_id: str,
    creator: UserRecord,
    name: str = "lobby",
    assistant: AssistantMode = "mention",
) -> RoomRecord:
    return await rooms.create(
        session,
        team_id=team_id,
        name=name,
        assistant=assistant,
        system_prompt=None,
        created_by=creator.id,
    )


async def user_team_room(database: Database) -> tuple[UserRecord, Membership, RoomRecord]:
    """A user, a team they own, and a room in it."""
    async with database.sessions.begin() as session:
        ada = await user(session)
        crew = await team(session, ada)
        lobby = await room(session, crew.team.id, ada)
    return ada, crew, lobby


async def messages(database: Database, room_id: str, author: Author, n: int) -> None:
    """`n` messages `m1`..`mN` in one transaction."""
    posts = [NewMessage(room_id, author, f"m{i}") for i in range(1, n + 1)]
    async with database.sessions.begin() as session:
        await append_many(session, posts)
