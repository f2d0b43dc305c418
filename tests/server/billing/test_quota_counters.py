"""The quota's counters: fast on the key-value store, durable in `usage_counters`, and
refusing (never granting blind) when the store cannot be reached. Real Redis and
PostgreSQL throughout."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

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


async def test_a_restart_with_an_empty_store_does_not_grant_the_allowance_twice(
    database: Database,
) -> None:
    user_id = await a_user(database)
    before = Quotas(MemoryKeyValue(), database, LIMITS)
    assert [await before.try_consume(user_id) for _ in range(2)] == [True, True]
    await before.close()  # the instance stops; its in-memory counters are gone

    after = Quotas(MemoryKeyValue(), database, LIMITS)
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
