"""The storage adapters the realtime actors use: message history and room access.

They implement `MessageStore` and `RoomDirectory` (actors/ports.py) on storage/messages.py
and storage/rooms.py; server/realtime.py builds them and hands them to the hub.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from storage import messages, rooms
from storage.db import Database, unavailable_when_down
from storage.messages import Appended, NewMessage, StoredMessage
from storage.room_lists import RoomListCache
from storage.rooms import RoomAccess, RoomRecord
from storage.teams import Role

REPLAY_PAGE = 1000
#: Rooms read by one statement of `rooms()` (the live rooms' tick).
ROOMS_PER_READ = 500
#: Connections `warm_up` prepares the hot statements on.
WARM_CONNECTIONS = 4


class SqlMessageStore:
    """`MessageStore` on storage/messages.py: one transaction per batch (group commit).

    A commit moves the rooms' `last_seq`, which the cached room lists show, so each
    commit invalidates the lists of the teams it touched.
    """

    def __init__(self, database: Database, room_lists: RoomListCache) -> None:
        self._database = database
        self._room_lists = room_lists
        self._team_of: dict[str, str] = {}  # filled by room(), which every room starts with

    async def append_many(self, batch: Sequence[NewMessage]) -> list[Appended]:
        # Plain connections, not ORM sessions: this is the hot path of every send. On
        # PostgreSQL the whole batch is one statement, atomic without BEGIN and COMMIT
        # (one round trip per commit, not three per room and two more); retried sends,
        # missing rooms and SQLite take the exact path in a transaction.
        appended = None
        if self._database.dialect == "postgresql":
            async with self._database.autocommit.connect() as connection:
                appended = await messages.append_at_once(connection, batch)
        if appended is None:
            async with self._database.engine.begin() as connection:
                appended = await messages.append_many(connection, batch)
        teams = {self._team_of.get(message.room_id) for message in batch}
        for team_id in teams - {None}:
            await self._room_lists.invalidate(str(team_id))
        return appended

    async def warm_up(self, connections: int = WARM_CONNECTIONS) -> None:
        """Run the hot statements once on `connections` connections at once (at start-up),
        storing nothing: the first sends and reads after a start then cost what later ones do,
        not the statements' first compile, prepare and plan (some 15 ms each)."""
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(connections):
                connection = await stack.enter_async_context(self._database.autocommit.connect())
                await messages.append_at_once(connection, [])
                await rooms.get_many(connection, [""])
        await self.room("")
        await self.recent("", 0, 1)

    async def events_between(self, room_id: str, after: int, upto: int) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        async with self._database.reads() as session:
            while after < upto:
                page = await messages.page(
                    session, room_id, after_seq=after, before_seq=upto + 1, limit=REPLAY_PAGE
                )
                if not page.items:
                    break
                events.extend(message.to_event() for message in page.items)
                after = page.items[-1].seq
        return events

    async def room(self, room_id: str) -> RoomRecord | None:
        async with self._database.reads() as session:
            room = await rooms.get(session, room_id)
        if room is not None:
            self._team_of[room_id] = room.team_id
        return room

    async def rooms(self, room_ids: Sequence[str]) -> dict[str, RoomRecord]:
        found: dict[str, RoomRecord] = {}
        async with self._database.autocommit.connect() as connection:
            for start in range(0, len(room_ids), ROOMS_PER_READ):
                part = room_ids[start : start + ROOMS_PER_READ]
                for room in await rooms.get_many(connection, part):
                    found[room.id] = room
                    self._team_of[room.id] = room.team_id
        return found

    async def recent(self, room_id: str, upto: int, limit: int) -> list[StoredMessage]:
        async with self._database.reads() as session:
            page = await messages.page(session, room_id, before_seq=upto + 1, limit=limit)
        return page.items


class SqlRoomDirectory:
    """`RoomDirectory` on storage/rooms.py: the room exists and the user is in its team.

    Every connection's join asks it, so answers are kept in the process: each room's
    record, and each (team, user)'s role. A cache must never grant what the database has
    taken away, so the hub forgets entries on the control stream's word (a member removed
    or changed, a room changed or deleted, on any instance); while the stream may be
    missing events (`trusted()` false: its self-probe is not heard) nothing is kept or
    read from memory, and an entry lives at most `ttl` seconds besides. Refusals are not
    kept: a user added to a team may join at once. A lookup that began before a change was
    heard is not kept either (`_generation`), so a stale answer cannot outlive the change.
    """

    def __init__(
        self,
        database: Database,
        *,
        ttl: float = 60.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        trusted: Callable[[], bool] = lambda: True,
    ) -> None:
        self._database = database
        self._trusted = trusted
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._rooms: dict[str, tuple[float, RoomRecord]] = {}  # id -> (expires, record)
        self._roles: dict[tuple[str, str], tuple[float, Role]] = {}  # (team, user) -> ...
        self._generation = 0  # moved by every change heard

    async def access(self, user_id: str, room_id: str) -> RoomAccess | None:
        """The access a join needs, from memory when known. Raises Unavailable when the
        database cannot be reached: a `join` is retried."""
        if not self._trusted():  # events may be lost: what was kept may be stale
            self._rooms.clear()
            self._roles.clear()
            return await self.access_now(user_id, room_id)
        now = self._clock()
        room = self._rooms.get(room_id)
        if room is not None and room[0] > now:
            role = self._roles.get((room[1].team_id, user_id))
            if role is not None and role[0] > now:
                return RoomAccess(room[1], role[1])
        generation = self._generation
        access = await self.access_now(user_id, room_id)
        if access is not None and generation == self._generation:
            self._keep(access, user_id, now + self._ttl)
        return access

    async def access_now(self, user_id: str, room_id: str) -> RoomAccess | None:
        """The access as the database has it now (a role checked for a cancel, a re-auth's
        recheck). Raises Unavailable when the database cannot be reached."""
        with unavailable_when_down():
            async with self._database.autocommit.connect() as connection:
                return await rooms.access_now(connection, room_id, user_id)

    def forget_member(self, team_id: str, user_id: str) -> None:
        """The user's membership of the team changed (removed, left, another role)."""
        self._generation += 1
        self._roles.pop((team_id, user_id), None)

    def forget_room(self, room_id: str) -> None:
        """The room changed or was deleted (with its team, perhaps)."""
        self._generation += 1
        self._rooms.pop(room_id, None)

    def _keep(self, access: RoomAccess, user_id: str, expires: float) -> None:
        if len(self._roles) >= self._max_entries or len(self._rooms) >= self._max_entries:
            self._roles.clear()  # crude, and rare: a bound on memory, not a policy
            self._rooms.clear()
        self._rooms[access.room.id] = (expires, access.room)
        self._roles[(access.room.team_id, user_id)] = (expires, access.role)
