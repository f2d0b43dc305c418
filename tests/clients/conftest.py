"""Fixtures for the client tests: real Roomcast processes over the suite's services."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from storage.db import Database
from tests.instances import InstancesFactory, launched


@pytest.fixture
async def instances(
    database: Database, redis: Redis, database_url: str, redis_url: str, tmp_path
) -> AsyncIterator[InstancesFactory]:
    """`await instances(n, **env)`: n `run.py serve` processes, killed after the test."""
    async with launched(database_url, redis_url, tmp_path / "instances") as factory:
        yield factory
