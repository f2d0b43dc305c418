"""The websocket's token check answers from the process when it may, never past a
revocation it heard."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from errors import Unauthorized
from server.auth.revocation import Revoked
from server.auth.tokens import AccessClaims
from server.auth.verified import VerifiedCache
from server.state import TOKENS
from server.ws import verify_token
from storage.db import Database
from storage.models import User
from storage.users import UserRecord
from tests.accounts import signup

LOGOUT, LOGOUT_ALL = "/api/v1/auth/logout", "/api/v1/auth/logout-all"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def a_user(user_id: str = "u1", version: int = 0) -> UserRecord:
    created = datetime.now(UTC)
    return UserRecord(user_id, "a@example.com", None, "a", "user", False, version, created)


def test_an_answer_read_before_a_revocation_arrived_is_not_kept() -> None:
    cache = VerifiedCache(ttl=30, revoked_ttl=900, max_entries=10)
    epoch = cache.epoch
    cache.forget(Revoked("u1"))
    cache.forget(Revoked("u1", "family"))
    cache.remember_user(a_user(), epoch)
    cache.remember_family("family", False, epoch)
    cache.remember_family("other", False, epoch)
    assert cache.user("u1") is None
    assert cache.family_revoked("family") is True
    assert cache.family_revoked("other") is None


def test_a_heard_sign_in_revocation_outlives_a_later_live_answer() -> None:
    cache = VerifiedCache(ttl=30, revoked_ttl=900, max_entries=10)
    cache.forget(Revoked("u1", "family"))
    cache.remember_family("family", False, cache.epoch)
    assert cache.family_revoked("family") is True


def test_entries_expire_after_the_ttl_and_are_bounded_in_number() -> None:
    clock = Clock()
    cache = VerifiedCache(ttl=30, revoked_ttl=900, max_entries=2, clock=clock)
    for user_id in ("u1", "u2", "u3"):
        cache.remember_user(a_user(user_id), cache.epoch)
    assert cache.user("u1") is None, "the oldest went first"
    assert cache.user("u3") is not None
    clock.now = 31
    assert cache.user("u3") is None
    assert cache.sizes() == (1, 0)


def test_verified_claims_are_kept_for_that_exact_token_and_never_past_its_expiry() -> None:
    clock = Clock()
    cache = VerifiedCache(ttl=30, revoked_ttl=900, max_entries=10, clock=clock)
    now = int(time.time())
    claims = AccessClaims("u1", "jti", 0, now, now + 5, "family")
    cache.remember_signed("header.payload.signature", claims)
    assert cache.signed("header.payload.signature") == claims
    assert cache.signed("header.other-payload.signature") is None
    assert "header.payload.signature" not in cache._signed._data  # kept under its digest
    clock.now = 6
    assert cache.signed("header.payload.signature") is None


def test_a_ttl_of_zero_keeps_nothing() -> None:
    cache = VerifiedCache(ttl=0, revoked_ttl=900, max_entries=10)
    cache.remember_user(a_user(), cache.epoch)
    cache.remember_family("family", False, cache.epoch)
    assert cache.sizes() == (0, 0)
    assert not cache.enabled


def test_nothing_kept_is_trusted_while_the_control_stream_may_miss_events() -> None:
    deaf = False
    cache = VerifiedCache(ttl=30, revoked_ttl=900, max_entries=10)
    cache.trust_while(lambda: not deaf)
    cache.remember_user(a_user(), cache.epoch)
    assert cache.usable()
    deaf = True
    epoch = cache.epoch
    assert not cache.usable()
    assert cache.epoch != epoch, "a check reading meanwhile keeps nothing"
    deaf = False
    assert cache.usable()
    assert cache.user("u1") is None, "what was kept before is gone"


async def test_the_websocket_check_keeps_the_user_and_the_sign_in(client) -> None:
    account = await signup(client)
    cache = client.app[TOKENS].verified
    assert cache.user(account.id) is None
    await verify_token(client.app, account.access_token)
    kept = cache.user(account.id)
    assert kept is not None
    assert kept.id == account.id
    assert cache.sizes() == (1, 1)


async def test_logout_makes_the_websocket_check_refuse_at_once(client) -> None:
    account = await signup(client)
    await verify_token(client.app, account.access_token)
    assert (await client.post(LOGOUT, headers=account.headers)).status == 204
    with pytest.raises(Unauthorized):
        await verify_token(client.app, account.access_token)


async def test_logout_all_makes_the_websocket_check_refuse_at_once(client) -> None:
    account = await signup(client)
    await verify_token(client.app, account.access_token)
    assert (await client.post(LOGOUT_ALL, headers=account.headers)).status == 204
    with pytest.raises(Unauthorized):
        await verify_token(client.app, account.access_token)


async def test_a_token_newer_than_the_kept_user_is_checked_against_the_database(
    client, database: Database
) -> None:
    account = await signup(client)
    await verify_token(client.app, account.access_token)
    async with database.sessions.begin() as session:
        await session.execute(update(User).where(User.id == account.id).values(token_version=1))
    newer = client.app[TOKENS].encode_access(
        a_user(account.id, version=1), "a-sign-in-of-that-version"
    )
    verified = await verify_token(client.app, newer)
    assert verified.user.id == account.id
    kept = client.app[TOKENS].verified.user(account.id)
    assert kept is not None
    assert kept.token_version == 1
