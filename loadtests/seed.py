"""Benchmark fixtures written straight through storage: users, one team, rooms; and tokens.

Registering thousands of users over REST would spend the benchmark's minutes on argon2
and login round trips that it does not measure, so users, the team, memberships and
rooms are inserted with the project's own storage functions, and access tokens are
minted with `server.auth.tokens.TokenService` under the benchmark server's SECRET_KEY.
The server then verifies them exactly as it verifies a login's token (signature,
denylist, user lookup, token version).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from server.auth.tokens import TokenService
from server.config import Settings
from storage import rooms, teams
from storage.db import Database
from storage.rooms import AssistantMode
from storage.users import UserRecord, create_user

BATCH = 250  # users per transaction


@dataclass(frozen=True, slots=True)
class SeededRoom:
    """A room and the users who are members of its team, in seeding order."""

    room_id: str
    users: tuple[UserRecord, ...]


async def _users(database: Database, prefix: str, count: int) -> list[UserRecord]:
    made: list[UserRecord] = []
    run = uuid.uuid4().hex[:8]
    while len(made) < count:
        async with database.sessions.begin() as session:
            for _ in range(min(BATCH, count - len(made))):
                number = len(made)
                made.append(
                    await create_user(
                        session,
                        email=f"{prefix}-{run}-{number}@bench.example",
                        name=f"{prefix}{number}",
                        password_hash=None,
                    )
                )
    return made


async def _room(
    database: Database, name: str, users: list[UserRecord], assistant: AssistantMode = "off"
) -> SeededRoom:
    """A team owned by the first user with the others as members, and one room in it."""
    owner, *others = users
    async with database.sessions.begin() as session:
        team = await teams.create(session, name=f"{name} team", owner_id=owner.id)
        for user in others:
            await teams.add_member(session, team.team.id, user.id, "member")
        room = await rooms.create(
            session,
            team_id=team.team.id,
            name=name,
            assistant=assistant,
            system_prompt=None,
            created_by=owner.id,
        )
    return SeededRoom(room.id, tuple(users))


async def seed_rooms(
    database_url: str,
    prefix: str,
    rooms_count: int,
    per_room: int,
    assistant: AssistantMode = "off",
) -> list[SeededRoom]:
    """`rooms_count` rooms, each in its own team of `per_room` fresh users.

    `assistant` is the rooms' assistant setting: "off", "mention" or "auto".
    """
    database = Database(database_url, pool_size=2)
    try:
        users = await _users(database, prefix, rooms_count * per_room)
        return [
            await _room(
                database, f"{prefix}-{i}", users[i * per_room : (i + 1) * per_room], assistant
            )
            for i in range(rooms_count)
        ]
    finally:
        await database.close()


def mint_tokens(secret_key: str, users: list[UserRecord]) -> dict[str, str]:
    """An access token per user id, valid for the server's access-token lifetime (15 min).

    `encode_access` touches neither the database nor the key-value store, so the service
    is built without them.
    """
    service = TokenService(Settings(secret_key=secret_key), None, None)  # type: ignore[arg-type]
    return {user.id: service.encode_access(user, str(uuid.uuid4())) for user in users}
