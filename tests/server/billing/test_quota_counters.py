"""The quota's counters: fast on the key-value store, durable in `usage_counters`, and
refusing (never granting blind) when the store cannot be reached. Real Redis and
PostgreSQL throughout."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis
from sqlalchemy import event

from errors import Unavailable
from server.billing.quotas import Quotas
from server.config import PlanLimits
from storage import usage
from storage.db import Database
from storage.kv import MemoryKeyValue, RedisKeyValue
from tests import seed
from tests.services import RedisServer

LIMITS = replace(PlanLimits(), basic_daily_ai_prompts=3)


async def a_user(database: Database) -> str:
    async with database.sessions.begin() as session:
        return (await seed.user(session)).id


async def recorded(database: Database, user_id: str) -> int:
    async with database.reads() as session:
        return await usage.prompts_on(session, user_id, datetime.now(UTC).date())


async def test_granted_prompts_are_written_to_usage_counters(database: Database) -> None:
    user_id = await a_user(database)
    quotas = Quotas(MemoryKeyValue(), database, LIMITS)
    assert [await quotas.try_consume(user_id) for _ in range(4)] == [True, True, True, False]
    await quotas.close()
    assert await recorded(database, user_id) == 3  # the refusal is not counted


@pytest.mark.parametrize("expected", [False, True], ids=["at the prompt", "looked up ahead"])
async def test_a_restart_with_an_empty_store_does_not_grant_the_allowance_twice(
    database: Database, expected: bool
) -> None:
    """The count starts from `usage_counters`, whether the prompt reads it or the lookup
    of a user expected to prompt (`expect`) did."""
    user_id = await a_user(database)
    before = Quotas(MemoryKeyValue(), database, LIMITS)
    assert [await before.try_consume(user_id) for _ in range(2)] == [True, True]
    await before.close()  # the instance stops; its in-memory counters are gone

    after = Quotas(MemoryKeyValue(), database, LIMITS)
    if expected:
        after.expect(user_id)
    assert [await after.try_consume(user_id) for _ in range(2)] == [True, False]
    assert await after.used_today(user_id) == 3
    await after.close()
    assert await recorded(database, user_id) == 3


async def test_instances_share_one_count_on_redis_and_both_write_it_down(
    database: Database, redis: Redis
) -> None:
    user_id = await a_user(database)
    one = Quotas(RedisKeyValue(redis, prefix="t:"), database, LIMITS)
    two = Quotas(RedisKeyValue(redis, prefix="t:"), database, LIMITS)
    granted = [await quotas.try_consume(user_id) for quotas in (one, two, one, two)]
    assert granted == [True, True, True, False]
    await one.close()
    await two.close()
    assert await recorded(database, user_id) == 3


async def test_an_unreachable_redis_refuses_the_prompt_as_unavailable(
    database: Database, own_redis: RedisServer
) -> None:
    user_id = await a_user(database)
    client = Redis.from_url(own_redis.url, socket_timeout=1, socket_connect_timeout=1)
    quotas = Quotas(RedisKeyValue(client, prefix="t:"), database, LIMITS)
    assert await quotas.try_consume(user_id) is True
    own_redis.stop()
    with pytest.raises(Unavailable):
        await quotas.try_consume(user_id)
    await quotas.close()
    await client.aclose()
    assert await recorded(database, user_id) == 1  # only the prompt that was granted


async def test_warming_up_counts_nothing(database: Database) -> None:
    user_id = await a_user(database)
    quotas = Quotas(MemoryKeyValue(), database, LIMITS)
    await quotas.warm_up()
    assert await quotas.used_today(user_id) == 0
    assert await quotas.try_consume(user_id) is True
    await quotas.close()
    assert await recorded(database, user_id) == 1


class Statements:
    """The SQL statements the database is sent while counting."""

    def __init__(self, database: Database) -> None:
        self.seen: list[str] = []
        self._engine = database.engine.sync_engine

    def _seen(self, _conn: object, _cursor: object, statement: str, *_: object) -> None:
        self.seen.append(statement)

    def __enter__(self) -> list[str]:
        event.listen(self._engine, "before_cursor_execute", self._seen)
        return self.seen

    @staticmethod
    def reads(statements: list[str]) -> list[str]:
        """The plan and count lookups among `statements` (granted prompts are written in
        the background, with statements of their own)."""
        return [
            statement
            for statement in statements
            if statement.lstrip().startswith("SELECT")
            and ("subscriptions" in statement or "usage_counters" in statement)
        ]

    def __exit__(self, *_: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)


async def test_users_expected_to_prompt_are_looked_up_together_and_their_prompts_read_nothing(
    database: Database,
) -> None:
    users = [await a_user(database) for _ in range(3)]
    quotas = Quotas(MemoryKeyValue(), database, LIMITS)
    with Statements(database) as looked_up:
        for user_id in users:
            quotas.expect(user_id)
        # A prompt that comes before the lookup is done waits for it instead of reading.
        assert await quotas.try_consume(users[0]) is True
    assert len(Statements.reads(looked_up)) == 2  # plans and counts, all three at once

    with Statements(database) as counting:
        assert [await quotas.try_consume(user_id) for user_id in users] == [True] * 3
    assert Statements.reads(counting) == []
    await quotas.close()
    assert [await recorded(database, user_id) for user_id in users] == [2, 1, 1]


async def test_a_forgotten_plan_is_read_again_for_the_next_prompt(database: Database) -> None:
    user_id = await a_user(database)
    quotas = Quotas(MemoryKeyValue(), database, LIMITS)
    assert await quotas.try_consume(user_id) is True
    with Statements(database) as kept:
        assert await quotas.try_consume(user_id) is True
    quotas.forget_plans(user_id)  # the control stream: the user left a team
    with Statements(database) as forgotten:
        assert await quotas.try_consume(user_id) is True
    await quotas.close()
    assert Statements.reads(kept) == []
    assert any("subscriptions" in statement for statement in forgotten)
