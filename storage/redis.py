"""Redis connections: one client per process, with timeouts so a dead Redis fails fast."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

#: The errors that mean "Redis is unreachable", as opposed to a bad command.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


def connect(url: str, *, socket_timeout: float = 5.0, max_connections: int = 64) -> Redis:
    """A client for `url`; commands retry briefly on a dropped connection, then raise."""
    return Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=2.0,
        health_check_interval=15,
        max_connections=max_connections,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


async def ping(client: Redis, timeout: float = 2.0) -> None:
    """Raise unless Redis answers PING within `timeout`."""
    async with asyncio.timeout(timeout):
        await client.ping()
