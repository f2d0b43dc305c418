"""Bytes on the socket: whole websocket frames, the outbound queue that writes them
straight into a socket that keeps up, and the heartbeat sweep over every connection.

`server/ws.py` owns the connections; this module never sees a `WebSocketResponse`, only
transports and the connections' `beat`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from actors.events import RoomEvent
from actors.outbound import OutboundQueue

DIRECT_WRITE_LIMIT = 64 * 1024  # bytes waiting in the transport before frames queue instead
PING_FRAME = b"\x89\x00"  # an empty unmasked ping (RFC 6455 section 5.5.2)


def text_frame(payload: bytes) -> bytes:
    """A whole unmasked websocket text frame (RFC 6455 §5.2) around `payload`."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 65536:
        header = b"\x81\x7e" + size.to_bytes(2, "big")
    else:
        header = b"\x81\x7f" + size.to_bytes(8, "big")
    return header + payload


class SocketOutbound(OutboundQueue):
    """An outbound queue that writes straight into the socket while the socket keeps up.

    A room hands every member the same payload object (or the same list of events), so
    the framed bytes are built once per event or batch (the one-entry caches) and each
    member costs one `transport.write`, with no task switch. Only a member whose socket is
    backed up (or whose queue is not empty, to keep order) queues, and its writer task
    drains the queue with backpressure.
    """

    __slots__ = ("_transport",)

    _cached: tuple[bytes, bytes] = (b"", b"")
    _cached_batch: tuple[Sequence[RoomEvent], bytes] = ((), b"")

    def __init__(
        self, transport: asyncio.Transport | None, *, soft_limit: int, hard_limit: int
    ) -> None:
        super().__init__(soft_limit=soft_limit, hard_limit=hard_limit)
        self._transport = transport

    def _writable(self) -> asyncio.Transport | None:
        """The transport, when frames may go straight into it (nothing queued before them)."""
        transport = self._transport
        if (
            self.writing
            or len(self)
            or self.closed
            or transport is None
            or transport.is_closing()
            or transport.get_write_buffer_size() >= DIRECT_WRITE_LIMIT
        ):
            return None
        return transport

    def put(self, frame: bytes, kind: str = "", gen: str | None = None) -> bool:
        transport = self._writable()
        if transport is None:
            return super().put(frame, kind, gen)
        source, wire = SocketOutbound._cached
        if source is not frame:
            wire = text_frame(frame)
            SocketOutbound._cached = (frame, wire)
        transport.write(wire)
        return True

    def put_events(self, events: Sequence[RoomEvent]) -> bool:
        transport = self._writable()
        if transport is None:
            return super().put_events(events)
        source, wire = SocketOutbound._cached_batch
        if source is not events:
            wire = b"".join([text_frame(event.frame) for event in events])
            SocketOutbound._cached_batch = (events, wire)
        transport.write(wire)
        return True


class Beating(Protocol):
    """A connection as the heartbeat sees it."""

    def beat(self, now: int) -> None: ...


class Heartbeat:
    """Pings quiet connections and drops the silent ones, with one timer for all of them.

    Every `interval / 2` seconds a sweep starts a new round. A connection that has sent
    nothing for two rounds (at least `interval` seconds) gets a ping; one that has still
    sent nothing, not even the pong, by the next sweep is a dead peer and is dropped. A
    dead peer is therefore gone 1.5 to 2 intervals after its last frame. Per connection
    this costs two integers, where aiohttp's own heartbeat keeps two timers per
    connection (about a kilobyte) and re-arms one on every frame received.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.round = 0
        self.connections: set[Beating] = set()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval / 2)
            self.sweep()

    def sweep(self) -> None:
        self.round += 1
        for connection in list(self.connections):
            connection.beat(self.round)
