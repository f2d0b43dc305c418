"""Each team's room list in the cache, so that a read right after a change is never stale.

A plain delete-on-change leaves a race: a reader that loaded the list just before a change
can write it back just after the writer's delete. So the list lives under a per-team
version token instead. A reader makes sure a version exists *before* it loads from the
database, and stores what it loaded under that version; a writer, after its commit, drops
the version. Whatever a reader finds under the current version was therefore loaded after
the last change, and a stale load can only land under a version nobody reads any more.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from storage.cache import Cache
from storage.types import new_id

RoomList = list[dict[str, Any]]


class RoomListCache:
    """The rooms of each team as JSON, oldest first, loaded on a miss."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache

    async def get(self, team_id: str, load: Callable[[], Awaitable[RoomList]]) -> RoomList:
        """The team's rooms, from the cache, or from `load` (then cached)."""
        version_key = f"rooms-version:{team_id}"
        version = await self._cache.get(version_key)
        if not isinstance(version, str):
            version = new_id()
            await self._cache.set(version_key, version)
        key = f"rooms:{team_id}:{version}"
        rooms = await self._cache.get(key)
        if isinstance(rooms, list):
            return rooms
        rooms = await load()
        await self._cache.set(key, rooms)
        return rooms

    async def invalidate(self, team_id: str) -> None:
        """Call after committing any change to the team's rooms (including `last_seq`)."""
        await self._cache.invalidate(f"rooms-version:{team_id}")
