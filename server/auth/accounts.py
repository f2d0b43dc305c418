"""Accounts: register, log in with a password (and 2FA), rename, change password, log out.

Anti-enumeration: an unknown email and a wrong password give the same answer and cost
the same (an argon2 verification against a dummy hash); an unknown email is even locked
out like an account would be.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from errors import NotFound, TotpRequired, Unauthorized
from server.auth.lockout import Lockout
from server.auth.passwords import Passwords
from server.auth.revocation import Revocations
from server.auth.tokens import AccessClaims, TokenPair, TokenService
from server.auth.twofactor import TwoFactor
from storage import tokens as refresh_store
from storage import users
from storage.db import Database
from storage.users import UserRecord

logger = logging.getLogger(__name__)

WRONG_CREDENTIALS = "wrong email or password"


class Accounts:
    """The account operations behind /auth/register, /auth/login, /me and friends."""

    def __init__(
        self,
        database: Database,
        passwords: Passwords,
        tokens: TokenService,
        lockout: Lockout,
        two_factor: TwoFactor,
        revocations: Revocations,
    ) -> None:
        self._database = database
        self._passwords = passwords
        self._tokens = tokens
        self._lockout = lockout
        self._two_factor = two_factor
        self._revocations = revocations

    async def register(self, email: str, password: str, name: str) -> UserRecord:
        """A new user with their personal team. Raises Conflict when the email is taken."""
        password_hash = await self._passwords.hash(password)
        async with self._database.sessions.begin() as session:
            user = await users.create_user(
                session, email=email, name=name, password_hash=password_hash
            )
        logger.info("registered user=%s", user.id)
        return user

    async def login(self, email: str, password: str, totp: str | None) -> TokenPair:
        """Tokens for the right password (and second factor when 2FA is on).

        Raises:
            Locked: too many recent failures. Unauthorized: wrong email or password.
            TotpRequired: 2FA is on and `totp` is missing or not valid.
        """
        async with self._database.sessions() as session:
            found = await users.credentials_by_email(session, email)
        await self._lockout.check(found, email)
        right = await self._passwords.verify(found.password_hash if found else None, password)
        if found is None or not right:
            await self._lockout.failed(found, email)
            raise Unauthorized(WRONG_CREDENTIALS)
        user = found.user
        if user.totp_enabled:
            if totp is None:
                raise TotpRequired()
            if not await self._two_factor.accept(user.id, totp):
                await self._lockout.failed(found, email)
                raise TotpRequired("the TOTP or backup code is not valid")
        if found.failed_logins:
            await self._lockout.succeeded(user.id)
        if found.password_hash and self._passwords.needs_rehash(found.password_hash):
            await self._set_password(user.id, password)
        return await self._tokens.issue(user)

    async def rename(self, user: UserRecord, name: str) -> UserRecord:
        async with self._database.sessions.begin() as session:
            renamed = await users.rename(session, user.id, name)
        if renamed is None:
            raise NotFound("no such user")
        return renamed

    async def change_password(
        self, user: UserRecord, claims: AccessClaims, current: str, new: str
    ) -> None:
        """Set a new password; every other session is revoked, the calling one keeps working.

        The calling session keeps its refresh family, and its access token is carried
        over the token version bump, so the client needs to do nothing.

        Raises:
            Unauthorized: `current` is wrong (counted like a failed login). Locked.
        """
        async with self._database.sessions() as session:
            found = await users.credentials(session, user.id)
        await self._lockout.check(found, None)
        if found is None or not await self._passwords.verify(found.password_hash, current):
            await self._lockout.failed(found, None)
            raise Unauthorized("the current password is wrong")
        version = await self._replace_password(user.id, new, keep_family=claims.session_id)
        await self._tokens.carry_access(claims, version)
        await self._revocations.user_revoked(user.id)

    async def reset_password(self, user_id: str, new: str) -> None:
        """Set a new password after a reset code; every session is revoked."""
        await self._replace_password(user_id, new, keep_family=None)
        async with self._database.sessions.begin() as session:
            await users.clear_failed_logins(session, user_id)
        await self._revocations.user_revoked(user_id)

    async def logout(
        self, user: UserRecord, claims: AccessClaims, refresh_token: str | None
    ) -> None:
        """Revoke the calling sign-in, access token included (and `refresh_token`'s)."""
        await self._tokens.revoke_session(user.id, claims.session_id)
        if refresh_token is not None:
            await self._tokens.revoke_refresh_token(user.id, refresh_token)

    async def logout_all(self, user: UserRecord) -> None:
        """Every token of the user stops working at once: token version bump."""
        async with self._database.sessions.begin() as session:
            await users.bump_token_version(session, user.id)
            await refresh_store.revoke_user(session, user.id, datetime.now(UTC))
        await self._revocations.user_revoked(user.id)

    async def _replace_password(self, user_id: str, new: str, *, keep_family: str | None) -> int:
        password_hash = await self._passwords.hash(new)
        async with self._database.sessions.begin() as session:
            await users.set_password_hash(session, user_id, password_hash)
            version = await users.bump_token_version(session, user_id)
            await refresh_store.revoke_user(
                session, user_id, datetime.now(UTC), keep_family=keep_family
            )
        return version

    async def _set_password(self, user_id: str, password: str) -> None:
        password_hash = await self._passwords.hash(password)
        async with self._database.sessions.begin() as session:
            await users.set_password_hash(session, user_id, password_hash)
