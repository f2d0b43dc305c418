"""A session's outbound queue: bounded in bytes, so a slow reader costs memory only up to a limit.

The room puts frames here without waiting; the websocket writer takes them in batches.
Past the soft limit, consecutive `ai.delta`s of one generation are merged (fewer, larger
deltas, the same text; never a `full` one, which holds the whole text so far); past the
hard limit the queue gives up and the session is closed with 4509, and the client resumes
with `join` + `since`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from actors.events import EventKind, RoomEvent


@dataclass(slots=True)
class _Pending:
    frame: bytes
    kind: str
    gen: str | None
    mergeable: bool  # an `ai.delta` that a following one of its generation may join


class OutboundQueue:
    """Frames waiting for the socket, with soft and hard limits in bytes.

    Every connection has one, mostly empty: slotted, and its list made by the first frame
    that has to wait.
    """

    __slots__ = (
        "soft_limit",
        "hard_limit",
        "_frames",
        "_bytes",
        "_ready",
        "on_backlog",
        "writing",
        "overflowed",
        "closed",
    )

    def __init__(self, *, soft_limit: int = 256 * 1024, hard_limit: int = 1024 * 1024) -> None:
        self.soft_limit = soft_limit
        self.hard_limit = hard_limit
        # A list, not a deque: frames are only appended and taken all at once. None while
        # nothing waits, which is most of an idle session's life.
        self._frames: list[_Pending] | None = None
        self._bytes = 0
        self._ready: asyncio.Event | None = None  # made by the writer's first take()
        self.on_backlog: Callable[[], None] | None = None  # first frame queued: start a writer
        self.writing = False  # a writer holds frames taken from the queue (not yet sent)
        self.overflowed = False
        self.closed = False

    def __len__(self) -> int:
        return len(self._frames) if self._frames is not None else 0

    def put(self, frame: bytes, kind: str = "", gen: str | None = None) -> bool:
        """Queue `frame` (of kind `kind`, an `EventKind`); False when the queue is closed or
        has just overflowed."""
        return self._queue(frame, kind, gen, mergeable=kind == EventKind.AI_DELTA)

    def put_events(self, events: Sequence[RoomEvent]) -> bool:
        """Queue several room events in order; False as `put`.

        A room hands every member the same sequence object, so a subclass may prepare the
        bytes once per sequence (the socket writes them all in one go).
        """
        return all([self._queue_event(event) for event in events])

    def _queue_event(self, event: RoomEvent) -> bool:
        mergeable = event.kind == EventKind.AI_DELTA and not event.full
        return self._queue(event.frame, event.kind, event.gen, mergeable=mergeable)

    def _queue(self, frame: bytes, kind: str, gen: str | None, *, mergeable: bool) -> bool:
        if self.closed:
            return False
        if mergeable and self._bytes > self.soft_limit and self._merge(frame, gen):
            return True
        if not self._frames and self.on_backlog is not None:
            self.on_backlog()
        if self._frames is None:
            self._frames = []
        self._frames.append(_Pending(frame, kind, gen, mergeable))
        self._bytes += len(frame)
        if self._bytes > self.hard_limit:
            self.overflowed = True
            self.close()
            return False
        if self._ready is not None:
            self._ready.set()
        return True

    def _merge(self, frame: bytes, gen: str | None) -> bool:
        """Fold a delta into the previous one when that is the newest frame queued."""
        if not self._frames:
            return False
        last = self._frames[-1]
        if not last.mergeable or last.gen != gen:
            return False
        earlier, later = orjson.loads(last.frame), orjson.loads(frame)
        earlier["text"] += later["text"]
        earlier["i"] = later["i"]
        merged = orjson.dumps(earlier)
        self._bytes += len(merged) - len(last.frame)
        last.frame = merged
        return True

    def close(self) -> None:
        """Drop what is queued and wake the writer so it sees `closed`."""
        self.closed = True
        self._frames = None
        self._bytes = 0
        if self._ready is not None:
            self._ready.set()

    async def take(self) -> list[bytes]:
        """Wait for frames and take all of them; [] once the queue is closed."""
        while not self._frames:
            if self.closed:
                return []
            if self._ready is None:
                self._ready = asyncio.Event()
            self._ready.clear()
            await self._ready.wait()
        frames = [pending.frame for pending in self._frames]
        self._frames = None
        self._bytes = 0
        return frames
