"""Fixtures for tests across real instances: `instances` and a 3-master `redis_cluster`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from storage.db import Database
from tests.instances import InstancesFactory, launched
from tests.services import RedisCluster


@pytest.fixture
async def instances(
    database: Database, redis: Redis, database_url: str, redis_url: str, tmp_path
) -> AsyncIterator[InstancesFactory]:
    """`await instances(n, **env)`: n Roomcast processes over the suite's emptied services.

    Depends on `database` and `redis` so each test starts from empty tables and an empty
    Redis; the processes are killed at the end of the test whatever its outcome.
    """
    async with launched(database_url, redis_url, tmp_path / "instances") as factory:
        yield factory


@pytest.fixture(scope="session")
def redis_cluster_server() -> Iterator[RedisCluster]:
    """A 3-master Redis Cluster for the session, started on first use (~2-3 s)."""
    cluster = RedisCluster()
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture
async def redis_cluster(redis_cluster_server: RedisCluster) -> RedisCluster:
    """The session's Redis Cluster with every master emptied first."""
    await asyncio.gather(*(_flush(url) for url in redis_cluster_server.urls))
    return redis_cluster_server


async def _flush(url: str) -> None:
    client = Redis.from_url(url)
    try:
        await client.flushall()
    finally:
        await client.aclose()
