"""One Alembic history serves PostgreSQL and SQLite, and it agrees with the models."""

from __future__ import annotations

import asyncio

import pytest

from storage import migrate
from tests.conftest import create_database


@pytest.fixture(params=["postgresql", "sqlite"])
async def empty_database_url(request, admin_database_url, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
    return await create_database(admin_database_url, "roomcast_migrations")


async def test_migrations_upgrade_downgrade_upgrade(empty_database_url: str) -> None:
    url = empty_database_url
    assert await migrate.current_revision(url) is None
    await asyncio.to_thread(migrate.upgrade, url)
    head = await migrate.current_revision(url)
    assert head is not None
    await asyncio.to_thread(migrate.downgrade, url)
    assert await migrate.current_revision(url) is None
    await asyncio.to_thread(migrate.upgrade, url)
    assert await migrate.current_revision(url) == head


async def test_models_and_migrations_agree(empty_database_url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, empty_database_url)
    assert await migrate.schema_diff(empty_database_url) == []
