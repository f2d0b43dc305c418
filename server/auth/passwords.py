"""argon2id password hashing with parameters from settings, and rehash-on-login detection."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from server.config import Argon2Params


class Passwords:
    """Hash and verify passwords off the event loop (argon2 is deliberately slow)."""

    def __init__(self, params: Argon2Params) -> None:
        self._hasher = PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_cost,
            parallelism=params.parallelism,
        )
        # Verified against when the account does not exist, so both paths cost the same.
        self._dummy = self._hasher.hash("not a real password, only for timing")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when `password` matches; a missing hash still spends one verification."""
        try:
            return await asyncio.to_thread(
                self._hasher.verify, stored_hash or self._dummy, password
            )
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)
