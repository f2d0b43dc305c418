"""Operations endpoints: liveness, readiness (database and Redis), Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from errors import Unavailable
from server.http.json import json_response
from server.state import DATABASE, METRICS, PROBE, REDIS
from storage.redis import ping as redis_ping

logger = logging.getLogger(__name__)


async def health(_request: web.Request) -> web.Response:
    """The process is alive and serving; says nothing about its dependencies."""
    return json_response({"status": "ok"})


async def _check(name: str, probe: asyncio.Future[None] | asyncio.Task[None]) -> str | None:
    try:
        await probe
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # any failure of a probe means "not ready", with its reason
        logger.warning("readiness: %s unreachable: %s", name, exc.__class__.__name__)
        return f"{exc.__class__.__name__}"
    return None


async def ready(request: web.Request) -> web.Response:
    """200 when the database and (if configured) Redis answer; 503 `unavailable` otherwise."""
    checks = {"database": asyncio.ensure_future(request.app[DATABASE].ping())}
    client = request.app[REDIS]
    if client is not None:
        checks["redis"] = asyncio.ensure_future(redis_ping(client))
    failures = {}
    for name, probe in checks.items():
        reason = await _check(name, probe)
        request.app[METRICS].dependency_up.labels(name).set(0 if reason else 1)
        if reason:
            failures[name] = reason
    if PROBE in request.app and not request.app[PROBE].healthy():
        failures["bus"] = "not hearing its own probe"
    if failures:
        raise Unavailable(
            f"not ready: {', '.join(failures)} unreachable", details={"unreachable": failures}
        )
    return json_response({"status": "ready", "checks": {name: "ok" for name in checks}})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[METRICS].render(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
