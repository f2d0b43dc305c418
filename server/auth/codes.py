"""Six-digit one-time codes (passwordless login, password reset): 10 minutes, 5 attempts.

A code is stored as an HMAC keyed with the server secret: six digits are a million
possibilities, so a plain hash of a leaked row would be reversed instantly.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import Literal

from storage import otp
from storage.db import Database

TTL = timedelta(minutes=10)
MAX_ATTEMPTS = 5
Purpose = Literal["login", "reset"]
Channel = Literal["email", "sms"]


class OneTimeCodes:
    """Issue, check and spend one-time codes."""

    def __init__(self, database: Database, secret_key: str) -> None:
        self._database = database
        self._key = secret_key.encode()

    def _digest(self, purpose: Purpose, destination: str, code: str) -> str:
        message = f"{purpose}:{destination}:{code}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    async def issue(self, channel: Channel, destination: str, purpose: Purpose) -> str:
        """A new code for `destination`; earlier ones for the same purpose stop working."""
        code = f"{secrets.randbelow(1_000_000):06d}"
        now = datetime.now(UTC)
        async with self._database.sessions.begin() as session:
            await otp.replace(
                session,
                channel=channel,
                destination=destination,
                purpose=purpose,
                code_hash=self._digest(purpose, destination, code),
                now=now,
                expires_at=now + TTL,
            )
        return code

    async def check(self, destination: str, purpose: Purpose, code: str) -> str | None:
        """The id of the live code `code` is, counting the attempt; None when it is wrong,
        expired, used up or there is none. The code stays live until `spend`."""
        async with self._database.sessions.begin() as session:
            live = await otp.take_attempt(
                session, destination, purpose, datetime.now(UTC), MAX_ATTEMPTS
            )
        expected = self._digest(purpose, destination, code)
        if live is None or not hmac.compare_digest(live.code_hash, expected):
            return None
        return live.id

    async def spend(self, code_id: str) -> bool:
        """Use the code up; False when a concurrent request used it first."""
        async with self._database.sessions.begin() as session:
            return await otp.consume(session, code_id, datetime.now(UTC))
