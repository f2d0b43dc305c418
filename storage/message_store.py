"""The storage adapters the realtime actors use: message history and room access.

They implement `MessageStore` and `RoomDirectory` (actors/ports.py) on storage/messages.py
and storage/rooms.py; server/realtime.py builds them and hands them to the hub.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from storage import messages, rooms
from storage.db import Database, unavailable_when_down
from storage.messages import Appended, NewMessage, StoredMessage
from storage.room_lists import RoomListCache
from storage.rooms import RoomAccess, RoomRecord

REPLAY_PAGE = 1000


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

    async def recent(self, room_id: str, upto: int, limit: int) -> list[StoredMessage]:
        async with self._database.reads() as session:
            page = await messages.page(session, room_id, before_seq=upto + 1, limit=limit)
        return page.items


class SqlRoomDirectory:
    """`RoomDirectory` on storage/rooms.py: the room exists and the user is in its team."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def access(self, user_id: str, room_id: str) -> RoomAccess | None:
        """Raises Unavailable when the database cannot be reached: a `join` is retried."""
        with unavailable_when_down():
            async with self._database.reads() as session:
                return await rooms.access(session, room_id, user_id)
