"""Redis connections: one client per process, with timeouts so a dead Redis fails fast.

A single Redis gets a `Redis` client; a Redis Cluster (`REDIS_CLUSTER=1`) a `RedisCluster`
one, which discovers the other nodes from the URL's and routes each command by its keys'
hash slot. Roomcast only sends commands whose keys share one slot (a stream shard's keys
carry the `{rc:<shard>}` hash tag), so the same calls work on both.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.backoff import ExponentialBackoff
from redis.exceptions import ClusterDownError, SlotNotCoveredError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

#: A client of either kind; both expose the commands the bus and the key-value store use.
RedisClient = Redis | RedisCluster

#: The errors that mean "Redis is unreachable", as opposed to a bad command. On a cluster a
#: dead or failing-over master shows as CLUSTERDOWN, TRYAGAIN or a slot without a node.
REDIS_DOWN = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,
    TryAgainError,
    SlotNotCoveredError,
    ConnectionError,
    OSError,
)


def connect(
    url: str,
    *,
    cluster: bool = False,
    socket_timeout: float = 5.0,
    max_connections: int = 64,
) -> RedisClient:
    """A client for `url` (a cluster's startup node when `cluster`).

    Commands retry briefly on a dropped connection, then raise. `max_connections` is per
    process for a single Redis and per node for a cluster.
    """
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
    return Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=2.0,
        health_check_interval=15,
        max_connections=max_connections,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


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
