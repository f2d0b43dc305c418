"""The event bus between instances: publish bytes on a topic, hand them to local subscribers.

`MemoryBus` is the single-instance default. `RedisStreamBus` keeps one Redis stream per
topic, its key carrying a shard hash tag (`{rc:7}:room:<id>`) so a Redis Cluster keeps a
shard's streams on one node and one XREAD per shard serves every local topic of it.
Handlers run on the reader's task and must not block: they `tell` an actor and return.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from storage.presence import RedisPresence
from storage.redis import REDIS_DOWN, REDIS_FAILED, RedisClient, xread_one_slot

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BusEvent:
    """One published event as a subscriber receives it."""

    topic: str
    data: bytes
    id: str


Handler = Callable[[BusEvent], None]

#: What `publish` and `subscribe` raise when the bus cannot take the event (Redis failed);
#: the in-process bus never fails.
BUS_FAILED = REDIS_FAILED


class Subscription(Protocol):
    def close(self) -> None: ...


class Bus(Protocol):
    """Publish to every instance's subscribers of a topic, this one's included."""

    async def publish(self, topic: str, data: bytes) -> str: ...

    async def publish_many(self, topic: str, items: Sequence[bytes]) -> None:
        """Publish `items` in order, in one go (one round trip on Redis)."""
        ...

    async def subscribe(self, topic: str, handler: Handler) -> Subscription: ...

    async def close(self) -> None: ...


@dataclass(eq=False, slots=True)
class _Handle:
    topics: dict[str, list[Handler]]
    topic: str
    handler: Handler
    on_empty: Callable[[str], None] = field(default=lambda _topic: None)

    def close(self) -> None:
        handlers = self.topics.get(self.topic)
        if handlers is None or self.handler not in handlers:
            return
        handlers.remove(self.handler)
        if not handlers:
            del self.topics[self.topic]
            self.on_empty(self.topic)


def _dispatch(handlers: list[Handler], event: BusEvent) -> None:
    for handler in tuple(handlers):
        try:
            handler(event)
        except Exception:  # one broken subscriber must not starve the others
            logger.exception("bus handler failed on topic=%s id=%s", event.topic, event.id)


class MemoryBus:
    """In-process bus: publish hands the event to every local handler at once."""

    def __init__(self) -> None:
        self._topics: dict[str, list[Handler]] = {}
        self._ids = itertools.count(1)

    async def publish(self, topic: str, data: bytes) -> str:
        event = BusEvent(topic, data, f"{next(self._ids)}-0")
        _dispatch(self._topics.get(topic, []), event)
        return event.id

    async def publish_many(self, topic: str, items: Sequence[bytes]) -> None:
        for data in items:
            await self.publish(topic, data)

    async def subscribe(self, topic: str, handler: Handler) -> Subscription:
        self._topics.setdefault(topic, []).append(handler)
        return _Handle(self._topics, topic, handler)

    async def close(self) -> None:
        self._topics.clear()


#: Stream shards of the Redis bus: one reader (and one connection) per shard in use.
SHARDS = 16


def shard_of(topic: str, shards: int) -> int:
    return zlib.crc32(topic.encode()) % shards


class RedisStreamBus:
    """Bus on Redis Streams: XADD per topic, one blocking XREAD per shard with local interest."""

    def __init__(
        self,
        client: RedisClient,
        *,
        reader: RedisClient | None = None,
        shards: int = SHARDS,
        maxlen: int = 10_000,
        block_ms: int = 2_000,  # below the client socket timeout (5 s)
        instance_id: str | None = None,
    ) -> None:
        self._redis = client
        # The shard readers each hold a connection through a blocking XREAD; on a client
        # of their own (`shards` connections) they never starve publishers and requests.
        self._reader = reader or client
        self._shards = shards
        self._maxlen = maxlen
        self._block_ms = block_ms
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self._topics: dict[str, list[Handler]] = {}
        self._cursors: dict[str, str] = {}  # stream key -> last id read
        self._readers: dict[int, asyncio.Task[None]] = {}
        self._closed = False

    def stream_key(self, topic: str) -> str:
        return f"{{rc:{shard_of(topic, self._shards)}}}:{topic}"

    def presence(self, ttl: float) -> RedisPresence:
        """Presence shared by the instances on this bus: a hash per room beside the room's
        stream (`{rc:<shard>}:room:<id>:presence`), so both live on one cluster node."""
        return RedisPresence(
            self._redis,
            self.instance_id,
            key_of=lambda room_id: f"{self.stream_key(f'room:{room_id}')}:presence",
            ttl=ttl,
        )

    def _wake_key(self, shard: int) -> str:
        return f"{{rc:{shard}}}:wake:{self.instance_id}"

    async def publish(self, topic: str, data: bytes) -> str:
        entry_id = await self._redis.xadd(
            self.stream_key(topic), {"d": data}, maxlen=self._maxlen, approximate=True
        )
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def publish_many(self, topic: str, items: Sequence[bytes]) -> None:
        """One pipeline of XADDs to the topic's stream: a commit's events in one round trip."""
        if not items:
            return
        if len(items) == 1:
            await self.publish(topic, items[0])
            return
        key = self.stream_key(topic)
        async with self._redis.pipeline(transaction=False) as pipe:
            for data in items:
                pipe.xadd(key, {"d": data}, maxlen=self._maxlen, approximate=True)
            await pipe.execute()

    async def subscribe(self, topic: str, handler: Handler) -> Subscription:
        key = self.stream_key(topic)
        if topic not in self._topics:
            # Start after the newest entry now, so nothing published from here on is missed.
            newest: Any = await self._redis.xrevrange(key, count=1)
            self._cursors[key] = newest[0][0].decode() if newest else "0-0"
            self._topics[topic] = []
            await self._wake(shard_of(topic, self._shards))
        self._topics[topic].append(handler)
        return _Handle(self._topics, topic, handler, on_empty=self._forget)

    def _forget(self, topic: str) -> None:
        self._cursors.pop(self.stream_key(topic), None)

    async def _wake(self, shard: int) -> None:
        """Make the shard's reader re-issue its XREAD with the new set of streams."""
        if shard not in self._readers or self._readers[shard].done():
            self._readers[shard] = asyncio.create_task(
                self._read_shard(shard), name=f"bus-reader-{shard}"
            )
            return
        wake = self._wake_key(shard)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(wake, {"w": b"1"}, maxlen=10, approximate=False)
            pipe.expire(wake, 60)
            await pipe.execute()

    def _streams_of(self, shard: int, wake_cursor: str) -> dict[str, str]:
        streams = {
            key: cursor
            for key, cursor in self._cursors.items()
            if key.startswith(f"{{rc:{shard}}}:")
        }
        streams[self._wake_key(shard)] = wake_cursor
        return streams

    async def _read_shard(self, shard: int) -> None:
        wake_key = self._wake_key(shard)
        wake_cursor = "$"
        backoff = 0.1
        while not self._closed:
            streams = self._streams_of(shard, wake_cursor)
            try:
                replies: Any = await xread_one_slot(
                    self._reader, streams, count=500, block_ms=self._block_ms
                )
            except REDIS_DOWN as exc:
                logger.warning("bus reader shard=%d lost redis: %s; retrying", shard, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            for raw_key, entries in replies or []:
                key = raw_key.decode()
                if key == wake_key:
                    wake_cursor = entries[-1][0].decode()
                    continue
                self._dispatch_entries(key, entries)

    def _dispatch_entries(self, key: str, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Hand a stream's new entries, in order, to its topic's subscribers."""
        if key not in self._cursors:
            return  # interest dropped while the read was in flight
        topic = key.split("}:", 1)[1]
        for raw_id, fields in entries:
            entry_id = raw_id.decode()
            self._cursors[key] = entry_id
            _dispatch(self._topics.get(topic, []), BusEvent(topic, fields[b"d"], entry_id))

    async def close(self) -> None:
        self._closed = True
        for task in self._readers.values():
            task.cancel()
        await asyncio.gather(*self._readers.values(), return_exceptions=True)
        self._readers.clear()
        self._topics.clear()
        self._cursors.clear()
