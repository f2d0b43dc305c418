"""The chaos scenario's client: one websocket that follows protocol.md's "Losing nothing".

A `ChaosClient` is one account joined to one room. A sender puts a message with a fresh
`client_id` into its outbox at a steady rate and keeps it there until its `ack`; a
reader only reads. Both keep every `seq` they receive. On a disconnect the client
reconnects to any of the instances after a jittered exponential backoff, joins again
with `since` = the highest seq it has, and resends every unacked message with the same
`client_id`. An `error` reply to a send puts the message back in the outbox, due again
shortly; a send that gets no reply at all on an open connection is resent after
`resend_after` seconds and counted as silent.

The bookkeeping is what the scenario audits: acks (seq, latency), received seqs (with
the message id and client_id of each), and the gaps, re-deliveries and reorderings seen
on the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

BODY = "chaos {client_id}"
MAX_IN_FLIGHT = 200  # below the server's 256 unhandled requests per connection
ERROR_RETRY = 0.25  # seconds before a send refused with `error` is due again
STABLE_AFTER = 2.0  # a connection up this long resets the backoff
CONNECT_TIMEOUT = 5.0


@dataclass(slots=True)
class Outgoing:
    """A message in the outbox: created at `created`, due to be (re)sent at `due`."""

    client_id: str
    created: float
    due: float
    in_flight: bool = False


@dataclass(frozen=True, slots=True)
class Ack:
    """What an ack said, and how long the message waited for it since it was created."""

    seq: int
    waited: float
    created: float


@dataclass(frozen=True, slots=True)
class Seen:
    """A received message event: its id and client_id, to compare with the database."""

    message_id: str
    client_id: str | None


@dataclass
class Tally:
    """Counts of one client's run, beside the acks and seqs it kept."""

    connects: int = 0
    connect_failures: int = 0
    failed_at: Counter[str] = field(default_factory=Counter)  # "port error" of failed connects
    close_codes: Counter[str] = field(default_factory=Counter)
    send_errors: Counter[str] = field(default_factory=Counter)
    join_errors: Counter[str] = field(default_factory=Counter)
    sends: int = 0
    silent: int = 0  # sends with neither ack nor error within resend_after, connection open
    ack_conflicts: int = 0  # a client_id acked twice with different seqs
    redelivered: int = 0  # a seq received again (dropped by de-duplication; allowed)
    gaps: int = 0  # seqs skipped: a new seq above highest + 1
    reordered: int = 0  # a seq not seen before arriving below the highest received
    acks_ahead: int = 0  # acks whose seq was above highest + 1 when they came


def _port(url: str) -> str:
    return url.rsplit(":", 1)[-1]


class ChaosClient:
    """One account in one room, over any of `urls`, resuming and resending until stopped.

    The first connection goes to `urls[0]`, every reconnection to one chosen at random,
    other than the one a connection attempt just failed on.
    """

    def __init__(
        self,
        name: str,
        token: str,
        room: str,
        urls: list[str],
        *,
        rate: float,
        rng: random.Random,
        backoff: tuple[float, float],
        resend_after: float,
    ) -> None:
        self.name = name
        self.room = room
        self.rate = rate
        self._token = token
        self._urls = urls
        self._rng = rng
        self._backoff_start, self._backoff_max = backoff
        self._resend_after = resend_after
        self.outbox: dict[str, Outgoing] = {}
        self.acks: dict[str, Ack] = {}
        self.seen: dict[int, Seen] = {}
        self.highest = 0
        self.tally = Tally()
        self._made = 0
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._joined = False
        self._wake = asyncio.Event()
        self._stopping = False
        self.visited: list[str] = []  # the port of each successful connection, in order

    @property
    def sender(self) -> bool:
        return self.rate > 0

    def unacked(self) -> int:
        return len(self.outbox)

    async def run(self, session: aiohttp.ClientSession, sending: asyncio.Event) -> None:
        """Connect, resume and read until `stop()`; make messages while `sending` is set."""
        producer = asyncio.create_task(self._produce(sending)) if self.sender else None
        try:
            await self._connect_loop(session)
        finally:
            if producer is not None:
                producer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await producer

    async def stop(self) -> None:
        """Stop reconnecting and close the current connection."""
        self._stopping = True
        self._wake.set()
        if self._ws is not None:
            with contextlib.suppress(Exception):  # its instance may be gone
                await self._ws.close()

    async def _produce(self, sending: asyncio.Event) -> None:
        period, next_at = 1.0 / self.rate, time.monotonic()
        while sending.is_set():
            now = time.monotonic()
            self._made += 1
            client_id = f"{self.name}-{self._made}"
            self.outbox[client_id] = Outgoing(client_id, created=now, due=now)
            self._wake.set()
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _connect_loop(self, session: aiohttp.ClientSession) -> None:
        delay, url = self._backoff_start, self._urls[0]  # the first time: the first url
        while not self._stopping:
            opened = time.monotonic()
            try:
                ws = await session.ws_connect(
                    f"{url}/ws",
                    headers={"Authorization": f"Bearer {self._token}"},
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
                    max_msg_size=4 * 1024 * 1024,
                )
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self.tally.connect_failures += 1
                self.tally.failed_at[f"{_port(url)} {type(exc).__name__}"] += 1
                failed = url
            else:
                failed = None
                self.tally.connects += 1
                self.visited.append(_port(url))
                await self._serve(ws)
                self.tally.close_codes[str(ws.close_code)] += 1
                if time.monotonic() - opened >= STABLE_AFTER:
                    delay = self._backoff_start
            if self._stopping:
                return
            await asyncio.sleep(self._rng.uniform(0.0, delay))  # full jitter
            delay = min(delay * 2, self._backoff_max)
            # Any instance, as a load balancer would choose; but not the one that just
            # refused, as its health check would.
            url = self._rng.choice([other for other in self._urls if other != failed] or self._urls)

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws, self._joined = ws, False
        pump = asyncio.create_task(self._pump(ws))
        try:
            await ws.send_json(
                {"type": "join", "room": self.room, "since": self.highest, "id": "j"}
            )
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    await self._on_frame(ws, message.json())
        except (aiohttp.ClientError, ConnectionError):
            pass  # the connection broke; the loop reconnects
        finally:
            self._ws, self._joined = None, False
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            now = time.monotonic()
            for item in self.outbox.values():  # unknown outcome: resend after the next join
                item.in_flight, item.due = False, now
            with contextlib.suppress(Exception):
                await ws.close()

    async def _on_frame(self, ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "message" and frame.get("room") == self.room:
            self.record_message(frame)
        elif kind == "ack" and frame.get("client_id") is not None:
            self._on_ack(frame)
        elif kind == "joined" and frame.get("re") == "j":
            self._joined = True
            self._wake.set()
        elif kind == "error":
            await self._on_error(ws, frame)

    def record_message(self, frame: dict[str, Any]) -> None:
        """Keep a `message` event's seq, counting re-deliveries, skips and reorderings."""
        seq = int(frame["seq"])
        if seq in self.seen:
            self.tally.redelivered += 1
            return
        if seq < self.highest:
            self.tally.reordered += 1
        elif seq > self.highest + 1:
            self.tally.gaps += seq - self.highest - 1
        self.seen[seq] = Seen(str(frame.get("id")), frame.get("client_id"))
        self.highest = max(self.highest, seq)

    def _on_ack(self, frame: dict[str, Any]) -> None:
        client_id, seq = str(frame["client_id"]), int(frame["seq"])
        if seq > self.highest + 1:
            self.tally.acks_ahead += 1
        earlier = self.acks.get(client_id)
        if earlier is not None:
            if earlier.seq != seq:
                self.tally.ack_conflicts += 1
            return
        item = self.outbox.pop(client_id, None)
        if item is not None:
            self.acks[client_id] = Ack(seq, time.monotonic() - item.created, item.created)

    async def _on_error(self, ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> None:
        code, re = str(frame.get("code")), frame.get("re")
        if re == "j":
            self.tally.join_errors[code] += 1
            await asyncio.sleep(ERROR_RETRY)
            join = {"type": "join", "room": self.room, "since": self.highest, "id": "j"}
            await ws.send_json(join)
            return
        item = self.outbox.get(str(re))
        if item is None:
            return
        self.tally.send_errors[code] += 1
        item.in_flight = False
        item.due = time.monotonic() + ERROR_RETRY * self._rng.uniform(0.5, 1.5)
        if code in ("not_found", "forbidden"):  # the room left this connection: join again
            self._joined = False
            await ws.send_json(
                {"type": "join", "room": self.room, "since": self.highest, "id": "j"}
            )

    async def _pump(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Send what is due, oldest first, at most MAX_IN_FLIGHT unanswered at once."""
        while True:
            self._wake.clear()
            if self._joined:
                try:
                    await self._send_due(ws)
                except (aiohttp.ClientError, ConnectionError):
                    return  # the read loop sees the close and reconnects
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await self._wake.wait()

    async def _send_due(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        now = time.monotonic()
        in_flight = sum(1 for item in self.outbox.values() if item.in_flight and item.due > now)
        for item in list(self.outbox.values()):
            if in_flight >= MAX_IN_FLIGHT:
                return
            if item.due > now:
                continue
            if item.in_flight:
                self.tally.silent += 1
            else:
                in_flight += 1
            item.in_flight, item.due = True, now + self._resend_after
            self.tally.sends += 1
            body = BODY.format(client_id=item.client_id)
            frame = {"type": "send", "room": self.room, "body": body}
            await ws.send_json({**frame, "client_id": item.client_id, "id": item.client_id})
