"""A team with an owner, an admin and a member, an outsider, and helpers to call the API."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest
from sqlalchemy import func, select

from server.config import Settings
from storage import teams
from storage.db import Database
from storage.models import Invitation, Message, Room, Team, TeamMember
from tests import seed
from tests.accounts import Account, ActsAs, four_roles

API = "/api/v1"
CALLERS = ("owner", "admin", "member", "outsider", "anonymous")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Rate limits out of the way: these tests sign up several users each."""
    return replace(settings, auth_rate_limit=100_000)


@dataclass
class Crew(ActsAs):
    """Four signed-up users, a team ("Crew") of the first three, and a room in it."""

    client: Any
    database: Database
    owner: Account
    admin: Account
    member: Account
    outsider: Account
    team_id: str
    room_id: str

    async def new_team(self, name: str = "Side") -> str:
        """Another team with the same owner, admin and member."""
        async with self.database.sessions.begin() as session:
            made = await teams.create(session, name=name, owner_id=self.owner.id)
            await teams.add_member(session, made.team.id, self.admin.id, "admin")
            await teams.add_member(session, made.team.id, self.member.id, "member")
        return made.team.id

    async def new_member(self, role: teams.Role = "member", team_id: str | None = None) -> str:
        """A user (made in storage, not signed in) who is a member of the team."""
        async with self.database.sessions.begin() as session:
            user = await seed.user(session, "Extra")
            await teams.add_member(session, team_id or self.team_id, user.id, role)
        return user.id

    async def new_room(self, name: str = "side room") -> str:
        response = await self.call("POST", f"/teams/{self.team_id}/rooms", json={"name": name})
        assert response.status == 201
        return str((await response.json())["id"])


@pytest.fixture
async def crew(client, database) -> Crew:
    owner, admin, member, outsider, team_id = await four_roles(client, database)
    room = await client.post(
        f"{API}/teams/{team_id}/rooms", json={"name": "lobby"}, headers=owner.headers
    )
    assert room.status == 201
    room_id = (await room.json())["id"]
    return Crew(client, database, owner, admin, member, outsider, team_id, room_id)


async def row_counts(database: Database) -> dict[str, int]:
    """Rows of the tables these endpoints write, to show that a refused request stored nothing."""
    counts = {}
    async with database.sessions() as session:
        for model in (Team, TeamMember, Invitation, Room, Message):
            counts[model.__tablename__] = int(
                await session.scalar(select(func.count()).select_from(model)) or 0
            )
    return counts


async def error_code(response: Any) -> str:
    return str((await response.json())["error"]["code"])
