"""Redis connections: one client per process, with timeouts so a dead Redis fails fast.

A single Redis gets a `Redis` client; a Redis Cluster (`REDIS_CLUSTER=1`) a `RedisCluster`
one, which discovers the other nodes from the URL's and routes each command by its keys'
hash slot. Roomcast only sends commands whose keys share one slot (a stream shard's keys
carry the `{rc:<shard>}` hash tag), so the same calls work on both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    ClusterDownError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from errors import Unavailable

#: A client of either kind; both expose the commands the bus and the key-value store use.
RedisClient = Redis | RedisCluster

#: The errors that mean "Redis is unreachable", as opposed to a bad command. On a cluster a
#: dead or failing-over master shows as CLUSTERDOWN, TRYAGAIN, a slot without a node or a
#: write to a demoted master (READONLY). An exhausted pool is a `RedisConnectionError` too.
REDIS_DOWN = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,
    TryAgainError,
    SlotNotCoveredError,
    ReadOnlyError,
    ConnectionError,
    OSError,
)

#: Every way a Redis command can fail: Redis unreachable (`REDIS_DOWN`), or a command it
#: refused (out of memory, a cluster without a node for the slot, ...).
REDIS_FAILED = (RedisError, RedisClusterException, *REDIS_DOWN)


@contextmanager
def unavailable_when_down() -> Iterator[None]:
    """Raise `Unavailable` (503, `unavailable`) for any failure of Redis inside the block.

    Whatever the cause (the pool exhausted, a timeout, a refused or stale connection), a
    client sees the same answer: a dependency is down, retry shortly.
    """
    try:
        yield
    except REDIS_DOWN as exc:
        raise Unavailable("redis is unavailable; retry shortly") from exc


def check_url(url: str) -> None:
    """Refuse what no Redis client can connect to, before anything tries.

    Raises:
        ValueError: what is wrong with `url`, without repeating it (it may hold a password).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must start with redis://, rediss:// or unix://")
    try:
        parts.port  # noqa: B018 - reading it is what checks it
    except ValueError:
        raise ValueError("its port is not a number") from None
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError("names no socket path")
        return
    if not parts.hostname:
        raise ValueError("names no host")
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise ValueError(f"its database number (the path) is {database!r}, not a number")


def connect(
    url: str,
    *,
    cluster: bool = False,
    socket_timeout: float = 5.0,
    max_connections: int = 64,
    pool_timeout: float = 1.0,
) -> RedisClient:
    """A client for `url` (a cluster's startup node when `cluster`).

    A command on a dropped connection (Redis restarted, say) is retried on a fresh one, so
    the pooled connections of a Redis that came back cost no failed request. A single
    Redis gets a blocking pool: beyond `max_connections` a command waits up to
    `pool_timeout` seconds for a free connection, then raises `RedisConnectionError`. A
    cluster's pools (`max_connections` per node) cannot wait: beyond it a command raises
    at once.
    """
    # The asyncio `Retry`: the synchronous one (redis.retry) only wraps the creation of
    # the command's coroutine, so a dropped connection was never retried.
    retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2)
    if cluster:
        return RedisCluster.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=2.0,
            health_check_interval=15,
            max_connections=max_connections,
            retry=retry,
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
    pool = BlockingConnectionPool.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=2.0,
        health_check_interval=15,
        max_connections=max_connections,
        timeout=pool_timeout,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return Redis.from_pool(pool)


async def xread_one_slot(
    client: RedisClient, streams: dict[str, str], *, count: int, block_ms: int
) -> Any:
    """XREAD `streams` (stream key -> last id read), whose keys must share one hash slot.

    On a cluster, redis-py learns XREAD's keys by asking a node `COMMAND GETKEYS` before
    every call (XREAD's keys are "movable"): two extra round trips, always to the same node.
    The keys' slot is known here, so the read goes straight to the node that owns it;
    a MOVED answer is still followed by redis-py.
    """
    if isinstance(client, RedisCluster):
        await client.initialize()  # a no-op unless a failure asked for fresh topology
        node = client.get_node_from_key(next(iter(streams)))
        args: list[str | int] = ["XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS"]
        return await client.execute_command(
            *args, *streams.keys(), *streams.values(), target_nodes=node
        )
    return await client.xread(streams, count=count, block=block_ms)  # type: ignore[arg-type]


async def ping(client: RedisClient, timeout: float = 2.0) -> None:
    """Raise unless Redis answers PING within `timeout`; on a cluster, every master must."""
    async with asyncio.timeout(timeout):
        if isinstance(client, RedisCluster):
            await client.ping(target_nodes=RedisCluster.PRIMARIES)
        else:
            await client.ping()
