"""Revocations live in the database; Redis (or the in-process store) only caches them.

A Redis restarted without persistence, or a restarted single instance, forgets every
cached answer: a logged-out token must still be refused afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, select

from server.state import DATABASE
from storage import migrate
from storage import tokens as refresh_store
from storage.models import RefreshToken
from tests.accounts import signup
from tests.instances import launched
from tests.server.auth.test_tokens import LOGOUT, ME, bearer, refresh
from tests.services import RedisServer


async def test_a_logged_out_token_stays_refused_after_redis_restarts_empty(
    make_client, own_redis: RedisServer
) -> None:
    client = await make_client(redis_url=own_redis.url)
    gone, kept = await signup(client), await signup(client)
    assert (await client.post(LOGOUT, headers=gone.headers)).status == 204
    assert (await client.get(ME, headers=gone.headers)).status == 401

    own_redis.stop()
    own_redis.start()  # no persistence: every key the server had put there is gone

    assert (await client.get(ME, headers=kept.headers)).status == 200, "Redis answers again"
    refused = await client.get(ME, headers=gone.headers)
    assert refused.status == 401
    assert (await refused.json())["error"]["code"] == "unauthorized"
    assert (await refresh(client, gone.refresh_token)).status == 401


async def test_without_redis_a_logout_survives_a_restart_of_the_instance(tmp_path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'roomcast.db'}"
    await asyncio.to_thread(migrate.upgrade, database_url)
    async with launched(database_url, "", tmp_path / "instances") as instances:
        (server,) = await instances(1)
        gone, kept = await signup(server.client()), await signup(server.client())
        client = server.client()
        assert (await client.post(LOGOUT, headers=gone.headers)).status == 204
        assert (await client.get(ME, headers=gone.headers)).status == 401

        await server.restart()  # the in-process key-value store starts empty

        client = server.client()
        assert (await client.get(ME, headers=kept.headers)).status == 200
        assert (await client.get(ME, headers=gone.headers)).status == 401
        assert (await refresh(client, gone.refresh_token)).status == 401


async def test_a_logout_on_one_instance_overrides_the_live_answer_another_cached(
    make_client,
) -> None:
    one, other = await make_client(), await make_client()  # one database, one Redis
    account = await signup(one)
    assert (await other.get(ME, headers=account.headers)).status == 200  # cached as live
    assert (await one.post(LOGOUT, headers=account.headers)).status == 204
    assert (await other.get(ME, headers=account.headers)).status == 401


async def test_a_warm_cache_checks_a_token_without_reading_refresh_tokens(client) -> None:
    account = await signup(client)
    second = await signup(client)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "refresh_tokens" in statement:
            statements.append(statement)

    engine = client.app[DATABASE].engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        for _ in range(3):
            for who in (account, second):
                assert (await client.get(ME, headers=who.headers)).status == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(statements) == 2, "one read per sign-in, on its first check; then the cache"


async def test_a_reused_refresh_token_refuses_its_sign_ins_access_tokens_already_cached(
    client,
) -> None:
    account = await signup(client)
    assert (await client.get(ME, headers=account.headers)).status == 200  # cached as live
    rotated = await (await refresh(client, account.refresh_token)).json()
    assert (await refresh(client, account.refresh_token)).status == 401  # reuse
    for access in (account.access_token, rotated["access_token"]):
        assert (await client.get(ME, headers=bearer(access))).status == 401


async def test_refresh_tokens_long_past_expiry_are_deleted_when_tokens_are_issued(
    client, database, settings
) -> None:
    account = await signup(client)
    now = datetime.now(UTC)
    margin = timedelta(seconds=settings.access_token_ttl)
    old, recent = str(uuid.uuid4()), str(uuid.uuid4())
    async with database.sessions.begin() as session:
        for family, expired_at in ((old, now - margin - timedelta(days=1)), (recent, now)):
            await refresh_store.add(
                session,
                user_id=account.id,
                family_id=family,
                token_hash=uuid.uuid4().hex + uuid.uuid4().hex,
                expires_at=expired_at,
            )
        await refresh_store.revoke_family(session, old, now)
        await refresh_store.revoke_family(session, recent, now)

    await signup(client)  # another login writes tokens, and prunes

    async with database.sessions() as session:
        families = set((await session.execute(select(RefreshToken.family_id))).scalars())
    assert old not in families, "past expiry by more than an access token's life: deleted"
    assert recent in families, "an access token of it could still be alive: kept"
    assert len(families) == 3
