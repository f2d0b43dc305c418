"""Passwordless login by emailed or texted code, and password reset by emailed code.

Requests always answer 202 and do their work (look-up, code, delivery) as a background
job, so neither the answer nor its timing tells whether the account exists.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

import aiojobs

from errors import Conflict, TotpRequired, Unauthorized
from server.auth.accounts import Accounts
from server.auth.codes import OneTimeCodes, Purpose
from server.auth.tokens import TokenPair, TokenService
from server.auth.twofactor import TwoFactor
from server.outbox import Outbox
from server.ratelimit import RateLimiter
from storage import users
from storage.db import Database
from storage.users import UserRecord

logger = logging.getLogger(__name__)

NEW_USER_NAME = "New user"
WRONG_CODE = "wrong or expired code"
# Codes sent to one destination per 10 minutes, so nobody can flood a victim's inbox.
PER_DESTINATION = 5
DESTINATION_WINDOW = 600


class Recovery:
    """The /auth/otp/* and /auth/password/{forgot,reset} operations."""

    def __init__(
        self,
        database: Database,
        codes: OneTimeCodes,
        outbox: Outbox,
        jobs: aiojobs.Scheduler,
        limiter: RateLimiter,
        tokens: TokenService,
        two_factor: TwoFactor,
        accounts: Accounts,
    ) -> None:
        self._database = database
        self._codes = codes
        self._outbox = outbox
        self._jobs = jobs
        self._limiter = limiter
        self._tokens = tokens
        self._two_factor = two_factor
        self._accounts = accounts

    async def request_login_code(self, *, email: str | None, phone: str | None) -> None:
        if phone is not None:
            await self._spawn(self._text_login_code(phone))
        elif email is not None:
            await self._spawn(self._mail_code(email, "login"))

    async def request_reset_code(self, email: str) -> None:
        await self._spawn(self._mail_code(email, "reset"))

    async def login_with_code(
        self, *, email: str | None, phone: str | None, code: str, totp: str | None
    ) -> TokenPair:
        """Tokens for a valid code; an unknown phone number gets a new account.

        Raises:
            Unauthorized: wrong, expired or used-up code, or no such email account.
            TotpRequired: the account has 2FA and `totp` is missing or not valid
                (the code stays usable for the retry, within its attempts).
        """
        destination = phone or email or ""
        code_id = await self._codes.check(destination, "login", code)
        if code_id is None:
            raise Unauthorized(WRONG_CODE)
        async with self._database.sessions() as session:
            if phone is not None:
                user = await users.find_by_phone(session, phone)
            else:
                user = await users.find_by_email(session, destination)
        if user is None and phone is None:
            raise Unauthorized(WRONG_CODE)
        if user is not None and user.totp_enabled:
            if totp is None or not await self._two_factor.accept(user.id, totp):
                raise TotpRequired()
        if not await self._codes.spend(code_id):
            raise Unauthorized(WRONG_CODE)
        return await self._tokens.issue(user or await self._new_phone_user(destination))

    async def reset_password(self, email: str, code: str, new_password: str) -> None:
        """Set a new password with an emailed code; every session is revoked.

        Raises:
            Unauthorized: wrong, expired or used-up code.
        """
        code_id = await self._codes.check(email, "reset", code)
        if code_id is None:
            raise Unauthorized(WRONG_CODE)
        async with self._database.sessions() as session:
            user = await users.find_by_email(session, email)
        if user is None or not await self._codes.spend(code_id):
            raise Unauthorized(WRONG_CODE)
        await self._accounts.reset_password(user.id, new_password)

    async def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        await self._jobs.spawn(coro)

    async def _allowed(self, destination: str, purpose: Purpose) -> bool:
        key = f"otp:{purpose}:{destination}"
        allowed = await self._limiter.allow(key, limit=PER_DESTINATION, window=DESTINATION_WINDOW)
        if not allowed:
            logger.warning("otp: too many %s codes requested, not sending", purpose)
        return allowed

    async def _mail_code(self, email: str, purpose: Purpose) -> None:
        async with self._database.sessions() as session:
            user = await users.find_by_email(session, email)
        if user is None or not await self._allowed(email, purpose):
            return
        code = await self._codes.issue("email", email, purpose)
        if purpose == "login":
            subject, text = "Your Roomcast sign-in code", "Your sign-in code is"
        else:
            subject, text = "Reset your Roomcast password", "Your password reset code is"
        await self._outbox.send_email(email, subject, f"{text} {code}. It expires in 10 minutes.")

    async def _text_login_code(self, phone: str) -> None:
        if not await self._allowed(phone, "login"):
            return
        code = await self._codes.issue("sms", phone, "login")
        await self._outbox.send_sms(phone, f"Your Roomcast code is {code}")

    async def _new_phone_user(self, phone: str) -> UserRecord:
        try:
            async with self._database.sessions.begin() as session:
                return await users.create_user(
                    session, email=None, phone=phone, name=NEW_USER_NAME, password_hash=None
                )
        except Conflict:  # created by a concurrent verify a moment ago
            async with self._database.sessions() as session:
                user = await users.find_by_phone(session, phone)
            if user is None:
                raise
            return user
