"""The app factory: middleware, routes, and the resources opened and closed with the app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiojobs
from aiohttp import web

from server import api_reference, openapi, realtime, ws
from server.config import Settings
from server.forwarded import forwarded_middleware
from server.http import auth, billing, health, pages, rooms, teams
from server.metrics import Metrics
from server.middleware import (
    count_upgrade,
    error_middleware,
    metrics_middleware,
    request_id_middleware,
    upgrade_middleware,
)
from server.outbox import make_outbox
from server.state import (
    BUS,
    CACHE,
    DATABASE,
    JOBS,
    KV,
    METRICS,
    OUTBOX,
    PRESENCE,
    REDIS,
    SETTINGS,
)
from storage import redis as redis_conn
from storage.bus import SHARDS, MemoryBus, RedisStreamBus
from storage.cache import Cache
from storage.db import Database
from storage.kv import MemoryKeyValue, RedisKeyValue
from storage.presence import MemoryPresence

logger = logging.getLogger(__name__)


async def _storage(app: web.Application) -> AsyncIterator[None]:
    """Open the database and, when configured, Redis; in-process stand-ins otherwise."""
    settings = app[SETTINGS]
    app[DATABASE] = Database(settings.database_url)
    reader = None
    if settings.redis_url:
        redis = redis_conn.connect(
            settings.redis_url,
            cluster=settings.redis_cluster,
            max_connections=settings.redis_max_connections,
            pool_timeout=settings.redis_pool_timeout,
        )
        # The bus's shard readers block in XREAD: a pool of their own, one per shard.
        reader = redis_conn.connect(
            settings.redis_url, cluster=settings.redis_cluster, max_connections=SHARDS
        )
        app[REDIS] = redis
        app[KV] = RedisKeyValue(redis)
        bus = RedisStreamBus(redis, reader=reader)
        app[BUS] = bus
        app[PRESENCE] = bus.presence(settings.presence_ttl)
    else:
        app[REDIS] = None
        app[KV] = MemoryKeyValue()
        app[BUS] = MemoryBus()
        app[PRESENCE] = MemoryPresence()
    app[CACHE] = Cache(app[KV])
    app[OUTBOX] = make_outbox(settings, app[DATABASE])
    logger.info(
        "storage: database=%s redis=%s",
        app[DATABASE].dialect,
        ("cluster" if settings.redis_cluster else "configured")
        if settings.redis_url
        else "in-process",
    )
    yield
    await app[BUS].close()
    for client in (app[REDIS], reader):
        if client is not None:
            await client.aclose()
    await app[DATABASE].close()


async def _jobs(app: web.Application) -> AsyncIterator[None]:
    """Background jobs (mail, webhook side effects) with a limit, awaited on shutdown."""
    scheduler = aiojobs.Scheduler(limit=100, pending_limit=10_000, close_timeout=10)
    app[JOBS] = scheduler
    yield
    await scheduler.wait_and_close(timeout=10)


def create_app(settings: Settings) -> web.Application:
    """Build the application for `settings`; resources open on startup, close on cleanup."""
    app = web.Application(
        middlewares=[
            # first: a websocket upgrade gets the four below done in one frame, not four
            # suspended for the socket's life; keep it in step with them
            upgrade_middleware(
                settings.trusted_proxies, settings.proxy_headers, self_served=ws.websocket
            ),
            request_id_middleware,  # before forwarded: the access line reads the id off its request
            forwarded_middleware(settings.trusted_proxies, settings.proxy_headers),
            metrics_middleware,
            error_middleware,
        ],
        client_max_size=settings.max_body_bytes,
    )
    app.on_response_prepare.append(count_upgrade)  # the upgrade_middleware's answers
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app.cleanup_ctx.append(_storage)
    app.cleanup_ctx.append(_jobs)
    health.setup(app)
    auth.setup(app)
    teams.setup(app)
    rooms.setup(app)
    billing.setup(app)  # before realtime: the assistant's quotas come from here
    realtime.setup(app)  # after auth: it needs the token service and the revocation hook
    openapi.setup(app)
    api_reference.setup(app)  # after openapi: it serves that document to Swagger UI
    pages.setup(app)  # `/` and `/docs/<name>.md`
    return app
