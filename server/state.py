"""Typed application state: every shared resource is reached through one of these keys."""

from __future__ import annotations

import aiojobs
from aiohttp import web
from redis.asyncio import Redis

from server.config import Settings
from server.metrics import Metrics
from server.outbox import Outbox
from storage.bus import Bus
from storage.cache import Cache
from storage.db import Database
from storage.kv import KeyValue

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
DATABASE = web.AppKey("database", Database)
REDIS: web.AppKey[Redis | None] = web.AppKey("redis")
KV: web.AppKey[KeyValue] = web.AppKey("kv")
CACHE = web.AppKey("cache", Cache)
BUS: web.AppKey[Bus] = web.AppKey("bus")
JOBS = web.AppKey("jobs", aiojobs.Scheduler)
OUTBOX: web.AppKey[Outbox] = web.AppKey("outbox")

REQUEST_ID = web.RequestKey("request_id", str)
