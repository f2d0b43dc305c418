"""Liveness, readiness through outages of PostgreSQL and Redis, and metrics."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import create_database
from tests.services import PostgresServer, RedisServer, find_pg_bin

needs_pg_binaries = pytest.mark.skipif(
    find_pg_bin("pg_ctl") is None, reason="stopping a database needs our own PostgreSQL"
)


async def ready_status(client) -> int:
    return (await client.get("/ready")).status


async def eventually_ready(client, expected: int) -> None:
    """Readiness follows the dependency within a few probes, without a restart."""
    async with asyncio.timeout(15):
        while await ready_status(client) != expected:
            await asyncio.sleep(0.2)


async def test_health_and_ready_answer_200_on_healthy_services(client) -> None:
    health = await client.get("/health")
    assert health.status == 200
    assert (await health.json())["status"] == "ok"
    ready = await client.get("/ready")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"database": "ok", "redis": "ok"}


async def test_metrics_are_prometheus_text_counting_requests(client) -> None:
    await client.get("/health")
    await client.get("/no/such/path")
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert 'roomcast_http_requests_total{method="GET",route="/health",status="200"}' in text
    assert 'route="unmatched",status="404"' in text
    assert "/no/such/path" not in text, "raw paths must not become label values"


@needs_pg_binaries
async def test_ready_turns_503_while_postgres_is_down_and_recovers(make_client) -> None:
    server = PostgresServer()
    server.start()
    try:
        url = await create_database(server.url, "outage")
        from storage import migrate

        await asyncio.to_thread(migrate.upgrade, url)
        client = await make_client(database_url=url)
        assert await ready_status(client) == 200

        await asyncio.to_thread(server.stop)
        response = await client.get("/ready")
        assert response.status == 503
        error = (await response.json())["error"]
        assert error["code"] == "unavailable"
        assert "database" in error["details"]["unreachable"]
        assert (await client.get("/health")).status == 200

        await asyncio.to_thread(server.start)
        await eventually_ready(client, 200)
    finally:
        server.destroy()


async def test_ready_turns_503_while_redis_is_down_and_recovers(make_client) -> None:
    server = RedisServer()
    server.start()
    try:
        client = await make_client(redis_url=server.url)
        assert await ready_status(client) == 200
        server.stop()
        response = await client.get("/ready")
        assert response.status == 503
        assert "redis" in (await response.json())["error"]["details"]["unreachable"]
        assert (await client.get("/health")).status == 200
        server.start()
        await eventually_ready(client, 200)
    finally:
        server.destroy()
