"""Per-account lockout: 5 failed logins within 15 minutes lock the account for 15 minutes.

Accounts keep the count on their row. An email with no account gets the same treatment
from a mirror in the key-value store, so that a locked answer does not tell an attacker
the account exists.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from errors import Locked
from storage import users
from storage.db import Database
from storage.kv import KeyValue
from storage.users import Credentials

THRESHOLD = 5
WINDOW = timedelta(minutes=15)
LOCK_FOR = timedelta(minutes=15)


def _email_key(email: str) -> str:
    return hashlib.sha256(users.normalize_email(email).encode()).hexdigest()


class Lockout:
    """Check, count and clear failed logins."""

    def __init__(self, database: Database, kv: KeyValue) -> None:
        self._database = database
        self._kv = kv

    async def check(self, credentials: Credentials | None, email: str | None) -> None:
        """Raises:
        Locked: the account (or the unknown email) is locked right now.
        """
        if credentials is not None:
            until = credentials.locked_until
            if until is not None and until > datetime.now(UTC):
                raise Locked("account temporarily locked after repeated failed logins")
        elif email is not None and await self._kv.get("auth:lock:" + _email_key(email)):
            raise Locked("account temporarily locked after repeated failed logins")

    async def failed(self, credentials: Credentials | None, email: str | None) -> None:
        if credentials is not None:
            async with self._database.sessions.begin() as session:
                await users.record_failed_login(
                    session,
                    credentials.user.id,
                    now=datetime.now(UTC),
                    window=WINDOW,
                    threshold=THRESHOLD,
                    lock_for=LOCK_FOR,
                )
            return
        if email is None:
            return
        key = _email_key(email)
        failures = await self._kv.incr("auth:fail:" + key, ttl=WINDOW.total_seconds())
        if failures >= THRESHOLD:
            await self._kv.set("auth:lock:" + key, b"1", ttl=LOCK_FOR.total_seconds())
            await self._kv.delete("auth:fail:" + key)

    async def succeeded(self, user_id: str) -> None:
        async with self._database.sessions.begin() as session:
            await users.clear_failed_logins(session, user_id)
