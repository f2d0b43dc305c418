"""Wire the auth services into the app once storage and the job scheduler are open."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from server.auth.accounts import Accounts
from server.auth.codes import OneTimeCodes
from server.auth.lockout import Lockout
from server.auth.passwords import Passwords
from server.auth.recovery import Recovery
from server.auth.tokens import TokenService
from server.auth.twofactor import TwoFactor
from server.ratelimit import RateLimiter
from server.state import (
    ACCOUNTS,
    DATABASE,
    JOBS,
    KV,
    OUTBOX,
    PASSWORDS,
    RATE_LIMITER,
    RECOVERY,
    REVOCATIONS,
    SETTINGS,
    TOKENS,
    TWO_FACTOR,
)


async def auth_services(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context: runs after `_storage` and `_jobs`, whose resources it uses."""
    settings, database, kv = app[SETTINGS], app[DATABASE], app[KV]
    app[PASSWORDS] = passwords = Passwords(settings.argon2)
    app[TOKENS] = tokens = TokenService(settings, database, kv, app[REVOCATIONS])
    app[RATE_LIMITER] = limiter = RateLimiter(kv)
    app[TWO_FACTOR] = two_factor = TwoFactor(database)
    lockout = Lockout(database, kv)
    app[ACCOUNTS] = accounts = Accounts(
        database, passwords, tokens, lockout, two_factor, app[REVOCATIONS]
    )
    codes = OneTimeCodes(database, settings.secret_key)
    app[RECOVERY] = Recovery(
        database, codes, app[OUTBOX], app[JOBS], limiter, tokens, two_factor, accounts
    )
    yield
