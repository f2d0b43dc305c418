"""A load-client process: it owns whole rooms (their publishers and subscribers) and steps.

The parent (loadtests/fanout.py) sends commands over a pipe and gets plain dicts back:

- `Connect(port, rooms)`: open, authenticate (header) and join every connection.
- `Step(step, rate, seconds, drain)`: publish `rate` messages/s for `seconds`, then wait
  until every send is acked and every subscriber has caught up (at most `drain` s);
  answer with counts, per-delivery latencies and the lost/out-of-order tally.
- `Idle(port, sessions)`: open and join sessions that then only answer pings.
- `Assist(port, rooms, timeout)`: the assistant scenario (loadtests/assistant_client.py).
- `Close()`: close every connection. `Exit()`: close and end the process.

Owning whole rooms keeps the seq bookkeeping local: a room's acks (its seq range per
step) and its subscribers' receipts are in the same process. Messages carry
`client_id = "<step>:<send monotonic ns>:<publisher>:<n>"`; CLOCK_MONOTONIC is shared by
every process of the machine, so receipt minus send is the latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import time
import traceback
from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol

import orjson
import uvloop

from loadtests.assistant_client import Assist, run_assist
from loadtests.wsclient import WsClient, open_ws

HOST = "127.0.0.1"
BODY = "The quick brown fox jumps over the lazy dog, and the dog does not mind."
CONNECT_CONCURRENCY = 64
CACHE_MAX = 50_000
_IGNORED: tuple[int, int, int] = (-1, -1, -1)


@dataclass(frozen=True, slots=True)
class RoomPlan:
    room_id: str
    subscriber_tokens: tuple[str, ...]
    publisher_tokens: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Connect:
    port: int
    rooms: tuple[RoomPlan, ...]
    # Several instances: a room's publishers, then its subscribers, take these ports in
    # turn (publisher i and subscriber i on ports[i % len(ports)]); empty: all on `port`.
    ports: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Step:
    step: int
    rate: float  # messages/s this worker offers, over all its rooms
    seconds: float
    drain: float


@dataclass(frozen=True, slots=True)
class Idle:
    port: int
    sessions: tuple[tuple[str, str], ...]  # (room id, token)


@dataclass(frozen=True, slots=True)
class Close:
    pass


@dataclass(frozen=True, slots=True)
class Exit:
    pass


Command = Connect | Step | Idle | Assist | Close | Exit


@dataclass(slots=True)
class Collector:
    """What the current step has measured so far, shared by this process's connections."""

    step: int = -1
    latencies: array[int] = field(default_factory=lambda: array("q"))
    ack_latencies: array[int] = field(default_factory=lambda: array("q"))
    delivered: int = 0
    late: int = 0  # deliveries of an earlier step's messages
    sent: int = 0
    acked: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    closed: Counter[int] = field(default_factory=Counter)
    cache: dict[bytes, tuple[int, int, int]] = field(default_factory=dict)

    def reset(self, step: int) -> None:
        self.step = step
        self.latencies = array("q")
        self.ack_latencies = array("q")
        self.delivered = self.late = self.sent = self.acked = 0
        self.errors = Counter()
        self.closed = Counter()

    def parse(self, payload: bytes) -> tuple[int, int, int]:
        """(seq, step, send ns) of a `message` frame, or _IGNORED; remembered by content.

        Every member of a room receives the same bytes (the server encodes once), so
        one decode serves all the subscribers of the room in this process.
        """
        frame = orjson.loads(payload)
        info = _IGNORED
        if frame.get("type") == "message":
            step, sent, _rest = str(frame.get("client_id")).split(":", 2)
            info = (int(frame["seq"]), int(step), int(sent))
        if len(self.cache) >= CACHE_MAX:
            self.cache.clear()
        self.cache[payload] = info
        return info


class Subscriber:
    """A member that only reads: latency per delivery, seq order per room."""

    __slots__ = ("client", "collector", "duplicates", "last_seq", "missing", "reordered")

    def __init__(self, client: WsClient, collector: Collector, joined_seq: int) -> None:
        self.client = client
        self.collector = collector
        self.last_seq = joined_seq
        self.missing: set[int] = set()
        self.reordered = 0
        self.duplicates = 0
        client.on_text = self.on_text

    def on_text(self, payload: bytes, now: int) -> None:
        collector = self.collector
        info = collector.cache.get(payload) or collector.parse(payload)
        seq, step, sent = info
        if seq < 0:
            return
        if step == collector.step:
            collector.latencies.append(now - sent)
            collector.delivered += 1
        else:
            collector.late += 1
        last = self.last_seq
        if seq == last + 1:
            self.last_seq = seq
        elif seq > last:
            self.missing.update(range(last + 1, seq))
            self.last_seq = seq
        elif seq in self.missing:
            self.missing.discard(seq)
            self.reordered += 1
        else:
            self.duplicates += 1


class Publisher:
    """A member that sends at the pace it is given and counts its acks and errors."""

    __slots__ = ("client", "collector", "index", "room", "sent")

    def __init__(self, client: WsClient, collector: Collector, room: RoomState, index: int) -> None:
        self.client = client
        self.collector = collector
        self.room = room
        self.index = index
        self.sent = 0
        client.on_text = self.on_text

    def publish(self, step: int) -> None:
        self.sent += 1
        client_id = f"{step}:{time.monotonic_ns()}:{self.index}:{self.sent}"
        frame = {"type": "send", "room": self.room.room_id, "body": BODY, "client_id": client_id}
        self.client.send(orjson.dumps(frame))

    def on_text(self, payload: bytes, now: int) -> None:
        if payload.startswith(b'{"type":"message"'):
            return  # its room's traffic; only subscribers measure it
        frame = orjson.loads(payload)
        kind = frame.get("type")
        if kind == "ack":
            step, sent, _rest = str(frame.get("client_id")).split(":", 2)
            self.room.max_seq = max(self.room.max_seq, int(frame["seq"]))
            if int(step) == self.collector.step:
                self.collector.acked += 1
                self.collector.ack_latencies.append(now - int(sent))
        elif kind == "error":
            self.collector.errors[str(frame.get("code"))] += 1


@dataclass(slots=True)
class RoomState:
    room_id: str
    max_seq: int = 0
    start_seq: int = 0
    subscribers: list[Subscriber] = field(default_factory=list)
    publishers: list[Publisher] = field(default_factory=list)

    def top_seq(self) -> int:
        return max([self.max_seq, *(s.last_seq for s in self.subscribers)])


async def _joined_client(
    port: int, room_id: str, token: str, gate: asyncio.Semaphore
) -> tuple[WsClient, int]:
    """Open, wait for `ready`, join `room_id`; the client and the room's seq at join."""
    async with gate:
        client = await open_ws(HOST, port, token)
        await client.next_frame("ready")
        client.send_json({"type": "join", "room": room_id})
        joined = await client.next_frame("joined")
    return client, int(joined["seq"])


def _drop(_payload: bytes, _now: int) -> None:
    """Frames to idle sessions (presence of later joiners) are read and dropped."""


async def close_clients(clients: list[WsClient]) -> int:
    """Close every client without reporting it lost and empty `clients`; how many closed."""
    for client in clients:
        client.on_lost = lambda _client: None
        client.close()
    closed = len(clients)
    clients.clear()
    await asyncio.sleep(0.2)  # let the transports flush their close frames
    return closed


class Worker:
    """The state of one client process across commands."""

    def __init__(self) -> None:
        self.collector = Collector()
        self.rooms: list[RoomState] = []
        self.clients: list[WsClient] = []

    def _track(self, client: WsClient) -> WsClient:
        client.on_lost = self._lost
        self.clients.append(client)
        return client

    def _lost(self, client: WsClient) -> None:
        self.collector.closed[client.close_code or 1006] += 1

    async def connect(self, command: Connect) -> dict[str, Any]:
        started = time.monotonic()
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        for plan in command.rooms:
            room = RoomState(plan.room_id)
            ports = command.ports or (command.port,)
            targets = [
                *((ports[i % len(ports)], t) for i, t in enumerate(plan.publisher_tokens)),
                *((ports[i % len(ports)], t) for i, t in enumerate(plan.subscriber_tokens)),
            ]
            opened = await asyncio.gather(
                *(_joined_client(port, plan.room_id, token, gate) for port, token in targets)
            )
            publishers = len(plan.publisher_tokens)
            for index, (client, seq) in enumerate(opened):
                self._track(client)
                room.max_seq = max(room.max_seq, seq)
                if index < publishers:
                    room.publishers.append(Publisher(client, self.collector, room, index))
                else:
                    room.subscribers.append(Subscriber(client, self.collector, seq))
            self.rooms.append(room)
        await asyncio.sleep(0.5)  # let the presence events of the last joins go by
        return {"connections": len(self.clients), "seconds": time.monotonic() - started}

    async def idle(self, command: Idle) -> dict[str, Any]:
        started = time.monotonic()
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        opened = await asyncio.gather(
            *(_joined_client(command.port, room, token, gate) for room, token in command.sessions)
        )
        for client, _seq in opened:
            self._track(client).on_text = _drop
        return {"connections": len(opened), "seconds": time.monotonic() - started}

    def _interleaved_publishers(self) -> list[Publisher]:
        """Publishers ordered so that consecutive sends go to different rooms."""
        most = max((len(room.publishers) for room in self.rooms), default=0)
        return [r.publishers[i] for i in range(most) for r in self.rooms if i < len(r.publishers)]

    async def _publish(self, step: Step) -> float:
        """Send at `step.rate` for `step.seconds`; returns the window's length."""
        publishers = self._interleaved_publishers()
        if not publishers or step.rate <= 0:
            await asyncio.sleep(step.seconds)
            return step.seconds
        started = time.monotonic()
        turn = 0
        while (elapsed := time.monotonic() - started) < step.seconds:
            due = int(step.rate * elapsed) - self.collector.sent
            for _ in range(due):
                publishers[turn % len(publishers)].publish(step.step)
                turn += 1
            self.collector.sent += max(due, 0)
            await asyncio.sleep(0.001)
        return time.monotonic() - started

    def _settled(self) -> bool:
        collector = self.collector
        if collector.acked + sum(collector.errors.values()) < collector.sent:
            return False
        return all(
            sub.client.lost or sub.last_seq >= room.max_seq
            for room in self.rooms
            for sub in room.subscribers
        )

    async def _drain(self, timeout: float) -> tuple[bool, float]:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self._settled():
                return True, time.monotonic() - started
            await asyncio.sleep(0.02)
        return self._settled(), time.monotonic() - started

    def _tally(self) -> dict[str, int]:
        """Lost and out-of-order deliveries of this step's seq range, then start afresh."""
        lost = reordered = duplicates = expected = 0
        for room in self.rooms:
            top = room.top_seq()
            expected += (top - room.start_seq) * len(room.subscribers)
            for sub in room.subscribers:
                lost += len(sub.missing) + max(0, top - sub.last_seq)
                reordered += sub.reordered
                duplicates += sub.duplicates
                sub.missing.clear()
                sub.reordered = sub.duplicates = 0
                sub.last_seq = max(sub.last_seq, top)
            room.start_seq = room.max_seq = top
        return {
            "lost": lost,
            "reordered": reordered,
            "duplicates": duplicates,
            "expected": expected,
        }

    async def step(self, step: Step) -> dict[str, Any]:
        collector = self.collector
        collector.reset(step.step)
        for room in self.rooms:
            room.start_seq = room.top_seq()
        window = await self._publish(step)
        delivered_window = collector.delivered
        drained, drain_seconds = await self._drain(step.drain)
        return {
            "sent": collector.sent,
            "acked": collector.acked,
            "errors": dict(collector.errors),
            "window": window,
            "delivered_window": delivered_window,
            "delivered": collector.delivered,
            "late": collector.late,
            "closed": dict(collector.closed),
            "drained": drained,
            "drain_seconds": drain_seconds,
            "latencies": collector.latencies,
            "ack_latencies": collector.ack_latencies,
            **self._tally(),
        }

    async def close(self) -> dict[str, Any]:
        self.rooms.clear()
        return {"closed": await close_clients(self.clients)}

    async def handle(self, command: Command) -> dict[str, Any]:
        match command:
            case Connect():
                return await self.connect(command)
            case Step():
                return await self.step(command)
            case Idle():
                return await self.idle(command)
            case Assist():
                return await run_assist(command)
            case Close() | Exit():
                return await self.close()
        raise ValueError(f"unknown command {command!r}")


def raise_open_files_limit() -> int:
    """Lift RLIMIT_NOFILE to its hard limit (thousands of sockets); the new soft limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class CommandHandler(Protocol):
    """What a client process runs its commands on: a `Worker` or a storm worker."""

    async def handle(self, command: Any) -> dict[str, Any]: ...

    async def close(self) -> dict[str, Any]: ...


async def _serve(pipe: Connection, worker: CommandHandler) -> None:
    loop = asyncio.get_running_loop()
    try:
        while True:
            try:
                command = await loop.run_in_executor(None, pipe.recv)
            except EOFError:
                return  # the parent went away
            try:
                reply = await worker.handle(command)
            except Exception:  # noqa: BLE001 - the parent reports it and stops the run
                reply = {"error": traceback.format_exc()}
            pipe.send(reply)
            if isinstance(command, Exit):
                return
    finally:
        await worker.close()


def serve_commands(
    pipe: Connection, cores: Iterable[int] | None, make_worker: Callable[[], CommandHandler]
) -> None:
    """Run a client process: pinned to `cores`, answering each command on `pipe` until `Exit`."""
    # Ctrl-C reaches the whole process group; the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if cores is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, set(cores))
    raise_open_files_limit()
    uvloop.run(_serve(pipe, make_worker()))


def worker_main(pipe: Connection, cores: Iterable[int] | None) -> None:
    """Entry point of a client process (multiprocessing target)."""
    serve_commands(pipe, cores, Worker)
