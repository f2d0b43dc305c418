"""Suite-wide fixtures: a real PostgreSQL and a real Redis, a clean database for every test.

The servers are throwaway ones started from the machine's binaries (tests/services.py)
unless TEST_DATABASE_URL / TEST_REDIS_URL point at existing ones. The schema is migrated
once; each test starts from empty tables and an empty Redis database.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from sqlalchemy import text

from server.app import create_app
from server.config import Argon2Params, Settings, generate_secret
from storage import migrate
from storage.db import Database
from storage.models import Base
from tests.services import PostgresServer, RedisServer

TEST_DB = "roomcast_test"

# Cheap argon2 for tests; production uses the defaults in server/config.py (ARGON2_*).
FAST_ARGON2 = Argon2Params(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | None]:
    """Our own PostgreSQL, or None when TEST_DATABASE_URL names one to use instead."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield None
        return
    server = PostgresServer()
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def admin_database_url(postgres_server: PostgresServer | None) -> str:
    """A URL with the right to create databases (the server's default database)."""
    if postgres_server is None:
        return os.environ["TEST_DATABASE_URL"]
    return postgres_server.url


async def create_database(admin_url: str, name: str) -> str:
    """(Re)create database `name` next to `admin_url`'s and return its URL."""
    admin = Database(admin_url, pool_size=1)
    try:
        async with admin.engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await autocommit.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.close()
    base = admin.url.rsplit("/", 1)[0]
    return f"{base}/{name}"


@pytest.fixture(scope="session")
async def database_url(postgres_server: PostgresServer | None, admin_database_url: str) -> str:
    """The migrated test database."""
    if postgres_server is None:
        url = os.environ["TEST_DATABASE_URL"]
    else:
        url = await create_database(admin_database_url, TEST_DB)
    await asyncio.to_thread(migrate.upgrade, url)
    return url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if os.environ.get("TEST_REDIS_URL"):
        yield os.environ["TEST_REDIS_URL"]
        return
    server = RedisServer()
    server.start()
    yield server.url
    server.destroy()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server for this test alone, free to stop and start again (empty) on its port."""
    server = RedisServer()
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
async def session_database(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, pool_size=2)
    yield database
    await database.close()


@pytest.fixture
async def database(session_database: Database) -> Database:
    """The test database with every table emptied first."""
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with session_database.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return session_database


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client on the test Redis, emptied first."""
    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def settings(
    database: Database, redis: Redis, database_url: str, redis_url: str, tmp_path
) -> Settings:
    """Settings for an app on the real test services, clean for this test."""
    return Settings(
        env="test",
        var_dir=tmp_path,
        database_url=database_url,
        redis_url=redis_url,
        secret_key=generate_secret(),
        argon2=FAST_ARGON2,
        # The test client shares the server's event loop, so the test's own work would
        # read as server lag and refuse upgrades; the admission tests set it themselves.
        ws_max_loop_lag=0.0,
    )


AppFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
def make_client(aiohttp_client, settings: Settings) -> AppFactory:
    """Start an app (settings overridable per call) and return a test client for it."""

    async def factory(
        app: web.Application | None = None, **overrides: object
    ) -> TestClient[web.Request, web.Application]:
        app = app or create_app(replace(settings, **overrides))  # type: ignore[arg-type]
        return await aiohttp_client(app)

    return factory


@pytest.fixture
async def client(make_client: AppFactory) -> TestClient[web.Request, web.Application]:
    return await make_client()
