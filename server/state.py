"""Typed application state: every shared resource is reached through one of these keys."""

from __future__ import annotations

import aiojobs
from aiohttp import web

from actors.hub import Hub
from server.auth.accounts import Accounts
from server.auth.passwords import Passwords
from server.auth.recovery import Recovery
from server.auth.revocation import Revocations
from server.auth.tokens import TokenService
from server.auth.twofactor import TwoFactor
from server.billing.api import Billing
from server.billing.quotas import Quotas
from server.billing.webhooks import Webhooks
from server.config import Settings
from server.logs import REQUEST_ID_KEY
from server.metrics import Metrics
from server.outbox import Outbox
from server.probe import Probe
from server.ratelimit import RateLimiter
from storage.bus import Bus
from storage.cache import Cache
from storage.db import Database
from storage.kv import KeyValue
from storage.presence import Presence
from storage.redis import RedisClient

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
DATABASE = web.AppKey("database", Database)
REDIS: web.AppKey[RedisClient | None] = web.AppKey("redis")
KV: web.AppKey[KeyValue] = web.AppKey("kv")
CACHE = web.AppKey("cache", Cache)
BUS: web.AppKey[Bus] = web.AppKey("bus")
#: Who is in which room: in Redis beside the bus when there is one, else in process.
PRESENCE: web.AppKey[Presence] = web.AppKey("presence")
JOBS = web.AppKey("jobs", aiojobs.Scheduler)
OUTBOX: web.AppKey[Outbox] = web.AppKey("outbox")
PASSWORDS = web.AppKey("passwords", Passwords)
TOKENS = web.AppKey("tokens", TokenService)
REVOCATIONS = web.AppKey("revocations", Revocations)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
ACCOUNTS = web.AppKey("accounts", Accounts)
TWO_FACTOR = web.AppKey("two_factor", TwoFactor)
RECOVERY = web.AppKey("recovery", Recovery)
HUB = web.AppKey("hub", Hub)
PROBE = web.AppKey("probe", Probe)
# Billing: None when STRIPE_SECRET_KEY (or, for webhooks, STRIPE_WEBHOOK_SECRET) is unset.
BILLING: web.AppKey[Billing | None] = web.AppKey("billing")
WEBHOOKS: web.AppKey[Webhooks | None] = web.AppKey("webhooks")
QUOTAS = web.AppKey("quotas", Quotas)

#: The request's id: one key, shared with the access log (server/logs.py) that reads it.
REQUEST_ID = REQUEST_ID_KEY
