"""Whether a sign-in (a refresh family, an access token's `sid`) was revoked.

The database is the record: a family is revoked once one of its refresh tokens is
(storage/tokens.py). The key-value store (Redis, shared by every instance, or the
in-process stand-in of a single one) caches the answer per family, so a warm check costs
no database round trip. A miss reads the database again, never assumes "not revoked":
a Redis restarted without persistence, an evicted key or a restarted process only cost
one read per sign-in.

Both answers are cached, and "live" must never outlast a revocation. A revoker, after its
commit, overwrites the entry with "revoked" (SET); a checker only adds "live" where there
is no entry (SET NX). So a checker that read the database just before a revocation
committed cannot put its stale "live" over the revoker's "revoked", and a "live" cached
before the revocation is overwritten by it, on every instance at once. The short life
of "live" bounds the one case left: a revoker whose cache write failed after its commit.
"""

from __future__ import annotations

from storage import tokens
from storage.db import Database
from storage.kv import KeyValue

_KEY = "auth:family:"
REVOKED = b"revoked"
LIVE = b"live"


class RevokedFamilies:
    """Revocation checks by family id: the key-value store in front of the database."""

    def __init__(
        self, database: Database, kv: KeyValue, *, revoked_ttl: float, live_ttl: float = 60.0
    ) -> None:
        """`revoked_ttl`: how long a revocation is cached (the database keeps it longer);
        `live_ttl`: how long "not revoked" is, at most."""
        self._database = database
        self._kv = kv
        self._revoked_ttl = revoked_ttl
        self._live_ttl = live_ttl

    async def is_revoked(self, family_id: str) -> bool:
        """The cached answer, or the database's (then cached)."""
        key = _KEY + family_id
        cached = await self._kv.get(key)
        if cached is not None:
            return cached == REVOKED
        async with self._database.autocommit.connect() as connection:
            revoked = await tokens.family_revoked(connection, family_id)
        if revoked:
            await self._kv.set(key, REVOKED, ttl=self._revoked_ttl)
            return True
        if await self._kv.set_if_absent(key, LIVE, ttl=self._live_ttl):
            return False
        # A revocation committed since our read and cached itself first: it wins.
        return await self._kv.get(key) == REVOKED

    async def revoked(self, *family_ids: str) -> None:
        """Call after committing the revocation of `family_ids`: every instance sees it."""
        for family_id in family_ids:
            await self._kv.set(_KEY + family_id, REVOKED, ttl=self._revoked_ttl)
