"""The room access a join checks, kept in memory: never past what it was told, nor past its
time to live, and never a refusal."""

from __future__ import annotations

import asyncio

from storage import teams
from storage.db import Database
from storage.message_store import SqlRoomDirectory
from tests import seed


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def bob_in_the_lobby(database: Database) -> tuple[str, str, str]:
    """Ada's team and room, and Bob a member of it: (team id, room id, Bob's id)."""
    _, crew, lobby = await seed.user_team_room(database)
    async with database.sessions.begin() as session:
        bob = await seed.user(session, "Bob")
        await seed.member(session, crew.team.id, bob, "member")
    return crew.team.id, lobby.id, bob.id


async def remove(database: Database, team_id: str, user_id: str) -> None:
    async with database.sessions.begin() as session:
        await teams.remove_member(session, team_id, user_id)


async def test_a_granted_access_is_kept_until_the_member_is_forgotten(database: Database) -> None:
    team_id, room_id, bob = await bob_in_the_lobby(database)
    directory = SqlRoomDirectory(database)
    granted = await directory.access(bob, room_id)
    assert granted is not None and granted.role == "member"
    assert granted.room.team_id == team_id

    await remove(database, team_id, bob)
    assert await directory.access(bob, room_id) == granted  # kept: nobody said otherwise
    assert await directory.access_now(bob, room_id) is None

    directory.forget_member(team_id, bob)  # what the control stream's member_removed does
    assert await directory.access(bob, room_id) is None


async def test_a_deleted_room_is_forgotten_and_an_entry_expires_by_itself(
    database: Database,
) -> None:
    team_id, room_id, bob = await bob_in_the_lobby(database)
    clock = Clock()
    directory = SqlRoomDirectory(database, ttl=60.0, clock=clock)
    assert await directory.access(bob, room_id) is not None
    await remove(database, team_id, bob)

    clock.now += 59.0
    assert await directory.access(bob, room_id) is not None
    clock.now += 2.0
    assert await directory.access(bob, room_id) is None

    directory.forget_room(room_id)
    assert await directory.access(bob, room_id) is None


async def test_a_refusal_is_not_kept_so_a_member_just_added_may_enter(database: Database) -> None:
    team_id, room_id, bob = await bob_in_the_lobby(database)
    await remove(database, team_id, bob)
    directory = SqlRoomDirectory(database)
    assert await directory.access(bob, room_id) is None

    async with database.sessions.begin() as session:
        await teams.add_member(session, team_id, bob, "admin")
    granted = await directory.access(bob, room_id)
    assert granted is not None and granted.role == "admin"


async def test_a_lookup_that_overlapped_a_change_is_not_kept(database: Database) -> None:
    team_id, room_id, bob = await bob_in_the_lobby(database)
    directory = SqlRoomDirectory(database)
    looking = asyncio.ensure_future(directory.access(bob, room_id))
    await asyncio.sleep(0)  # the lookup has begun: it waits on the database
    directory.forget_member(team_id, bob)  # a change heard meanwhile
    assert await looking is not None  # what the database said then

    await remove(database, team_id, bob)
    assert await directory.access(bob, room_id) is None


async def test_nothing_kept_is_used_or_kept_while_the_control_stream_may_miss_events(
    database: Database,
) -> None:
    team_id, room_id, bob = await bob_in_the_lobby(database)
    heard = [True]
    directory = SqlRoomDirectory(database, trusted=lambda: heard[0])
    assert await directory.access(bob, room_id) is not None
    await remove(database, team_id, bob)

    heard[0] = False  # the member_removed may be among what was lost
    assert await directory.access(bob, room_id) is None
    heard[0] = True
    assert await directory.access(bob, room_id) is None  # dropped, not kept for later
