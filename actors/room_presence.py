"""Who is in one room: this instance's sessions, and the users the other instances have.

A join is answered from memory. The room counts its local sessions per user (so "the
first session of a user" and "the last one" cost a dict look-up, not a scan of the
members), and keeps the shared presence (every instance's users) as last read: read on
every tick and kept current between ticks by the presence events on the bus. What the
shared presence must learn from this instance (a user's first session here, their last
one gone, and every tick's refresh of the entries' expiry) is written on a task of its
own, coalesced: however many joins arrive while a write is under way, they cost one more
write, and no join waits for Redis.
"""

from __future__ import annotations

import asyncio
import logging

import orjson

from actors.events import RoomEvent
from actors.ports import UserRef
from storage.presence import Presence
from storage.redis import REDIS_DOWN

logger = logging.getLogger(__name__)


class RoomPresence:
    """The presence of one room, as its actor sees it. Only the room's task calls it; the
    writer task it starts only writes to the shared presence and replaces `_shared`."""

    def __init__(self, room_id: str, presence: Presence) -> None:
        self._room_id = room_id
        self._presence = presence
        self._sessions: dict[str, int] = {}  # user id -> sessions in the room on this instance
        self._local: dict[str, str] = {}  # user id -> name, of the users in `_sessions`
        self._shared: dict[str, str] = {}  # user id -> name, on any instance, as last heard
        self._changes: dict[str, str | None] = {}  # to write: name (present), None (gone)
        self._refresh_due = False
        self._writer: asyncio.Task[None] | None = None

    def entered(self, user: UserRef) -> bool:
        """Count a session of `user` in; True when it is their first here."""
        count = self._sessions.get(user.id, 0)
        self._sessions[user.id] = count + 1
        if count:
            return False
        self._local[user.id] = user.name
        self._changes[user.id] = user.name
        self._write_soon()
        return True

    def left(self, user_id: str) -> bool:
        """Count a session of `user_id` out; True when it was their last here."""
        count = self._sessions.get(user_id, 0)
        if count > 1:
            self._sessions[user_id] = count - 1
            return False
        if not count:
            return False
        del self._sessions[user_id]
        del self._local[user_id]
        self._changes[user_id] = None
        self._write_soon()
        return True

    def has(self, user_id: str) -> bool:
        """Whether `user_id` has a session in the room on this instance."""
        return user_id in self._sessions

    def everyone(self) -> list[dict[str, str]]:
        """The room's users on every instance (`joined`'s `members`), from memory."""
        everyone = {**self._shared, **self._local}
        return [{"id": user_id, "name": name} for user_id, name in everyone.items()]

    def heard(self, event: RoomEvent) -> None:
        """A presence event from the bus (any instance's, ours too): the shared view follows
        it until the next tick reads the whole."""
        payload = orjson.loads(event.frame)
        user = payload.get("user") or {}
        user_id = user.get("id")
        if not isinstance(user_id, str):
            return
        if payload.get("state") == "online":
            self._shared[user_id] = str(user.get("name", ""))
        elif user_id not in self._local:
            self._shared.pop(user_id, None)

    async def load(self) -> None:
        """Read the shared presence once, as the room starts (then on every tick)."""
        try:
            self._shared = await self._presence.members(self._room_id)
        except REDIS_DOWN as exc:  # best effort: the next tick reads it again
            logger.warning("room %s: presence read failed: %r", self._room_id, exc)

    def tick(self) -> None:
        """Refresh this instance's entries (they expire) and read everyone's, off the room's
        task."""
        self._refresh_due = True
        self._write_soon()

    def _write_soon(self) -> None:
        if self._writer is None or self._writer.done():
            name = f"room:{self._room_id} presence"
            self._writer = asyncio.get_running_loop().create_task(self._write(), name=name)

    async def _write(self) -> None:
        """Write what changed (and, on a tick, refresh and read all) until nothing is due."""
        while self._changes or self._refresh_due:
            changes, self._changes = self._changes, {}
            refresh, self._refresh_due = self._refresh_due, False
            try:
                await self._write_once(changes, refresh)
            except REDIS_DOWN as exc:  # best effort: entries expire, the next tick refreshes
                logger.warning("room %s: presence write failed: %r", self._room_id, exc)

    async def _write_once(self, changes: dict[str, str | None], refresh: bool) -> None:
        present = dict(self._local) if refresh else {u: n for u, n in changes.items() if n}
        gone = [user_id for user_id, name in changes.items() if name is None]
        if present:
            await self._presence.refresh(self._room_id, present.items())
        if gone:
            await self._presence.remove(self._room_id, *gone)
        if refresh:
            self._shared = await self._presence.members(self._room_id)
