"""The reconnect storm's load client: a process that opens, authenticates and joins.

The parent (loadtests/storm.py) sends commands over a pipe and gets plain dicts back:

- `Storm(sessions, concurrency, timeout)`: open every session, at most `concurrency` at
  a time (a new one starts as soon as one has its `joined` or failed), and keep the
  joined ones open and idle (they answer pings). Each session is (port, room, token):
  with a token the first frame is `auth` and the client waits for `ready`; without one
  (the baseline) the server sends `ready` on its own. Then `join`, wait for `joined`.
  The answer holds, per joined session, the time from starting the TCP connect to its
  completion, to the 101, to `ready` and to `joined` (ns), the failures by cause and the
  storm's span.
- `Close()`: close every connection. `Exit()`: close and end the process.

It reuses the lean websocket protocol of loadtests/wsclient.py (no aiohttp client), on
uvloop, so one process opens several thousand connections a second.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from loadtests.worker import Close, Exit, close_clients, serve_commands
from loadtests.wsclient import HandshakeError, WsClient

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Storm:
    sessions: tuple[tuple[int, str, str | None], ...]  # (port, room id, token or None)
    concurrency: int
    timeout: float  # seconds from the connect to `joined`


Command = Storm | Close | Exit


class Failed(Exception):
    """A session that did not get to `joined`; the message is its cause, for counting."""


@dataclass(slots=True)
class Timings:
    """What a storm measured: per joined session, ns from the connect to each milestone."""

    connected: array[int] = field(default_factory=lambda: array("q"))
    upgraded: array[int] = field(default_factory=lambda: array("q"))
    ready: array[int] = field(default_factory=lambda: array("q"))
    joined: array[int] = field(default_factory=lambda: array("q"))
    failures: Counter[str] = field(default_factory=Counter)


def _drop(_payload: bytes, _now: int) -> None:
    """Frames to idle sessions (presence of later joiners) are read and dropped."""


async def _expect(client: WsClient, kind: str, phase: str) -> dict[str, Any]:
    """The next frame, which must be `kind`; anything else is a counted failure."""
    try:
        frame = await client.next_frame(timeout=3600)
    except ConnectionError:
        raise Failed(f"close {client.close_code or 1006} before {kind}") from None
    if frame.get("type") == kind:
        return frame
    if frame.get("type") == "error":
        raise Failed(f"error {frame.get('code')} at {phase}")
    raise Failed(f"unexpected {frame.get('type')} at {phase}")


async def _session(port: int, room: str, token: str | None, timings: Timings) -> WsClient:
    """Connect, authenticate, join; record the milestones. Raises Failed, TimeoutError."""
    loop = asyncio.get_running_loop()
    started = time.monotonic_ns()
    try:
        _transport, client = await loop.create_connection(
            lambda: WsClient(HOST, port, None), HOST, port
        )
    except OSError as error:
        raise Failed(f"connect: {type(error).__name__}") from None
    try:
        connected = time.monotonic_ns()
        try:
            await client.opened
        except HandshakeError as refused:
            raise Failed(f"upgrade refused: {refused}") from None
        except OSError as error:
            raise Failed(f"connection lost in the upgrade: {type(error).__name__}") from None
        upgraded = time.monotonic_ns()
        if token is not None:
            client.send_json({"type": "auth", "token": token, "id": 1})
        await _expect(client, "ready", "auth")
        ready = time.monotonic_ns()
        client.send_json({"type": "join", "room": room, "id": 2})
        await _expect(client, "joined", "join")
    except BaseException:
        client.close()
        raise
    client.on_text = _drop
    timings.connected.append(connected - started)
    timings.upgraded.append(upgraded - started)
    timings.ready.append(ready - started)
    timings.joined.append(time.monotonic_ns() - started)
    return client


class StormWorker:
    """The state of one client process across commands: its open connections."""

    def __init__(self) -> None:
        self.clients: list[WsClient] = []
        self.lost: Counter[int] = Counter()

    def _lost(self, client: WsClient) -> None:
        self.lost[client.close_code or 1006] += 1

    async def _one(
        self,
        session: tuple[int, str, str | None],
        gate: asyncio.Semaphore,
        storm: Storm,
        t: Timings,
    ) -> None:
        port, room, token = session
        async with gate:
            try:
                async with asyncio.timeout(storm.timeout):
                    client = await _session(port, room, token, t)
            except TimeoutError:
                t.failures[f"timeout after {storm.timeout:g} s"] += 1
                return
            except Failed as failure:
                t.failures[str(failure)] += 1
                return
        client.on_lost = self._lost
        self.clients.append(client)

    async def storm(self, storm: Storm) -> dict[str, Any]:
        timings = Timings()
        gate = asyncio.Semaphore(storm.concurrency)
        self.lost.clear()
        started = time.monotonic_ns()
        await asyncio.gather(*(self._one(s, gate, storm, timings) for s in storm.sessions))
        ended = time.monotonic_ns()
        return {
            "started_ns": started,
            "ended_ns": ended,
            "joined": len(timings.joined),
            "connected_ns": timings.connected,
            "upgraded_ns": timings.upgraded,
            "ready_ns": timings.ready,
            "joined_ns": timings.joined,
            "failures": dict(timings.failures),
            "lost_since_joined": dict(self.lost),
            "open": sum(1 for c in self.clients if not c.lost),
        }

    async def close(self) -> dict[str, Any]:
        return {"closed": await close_clients(self.clients)}

    async def handle(self, command: Command) -> dict[str, Any]:
        match command:
            case Storm():
                return await self.storm(command)
            case Close() | Exit():
                return await self.close()
        raise ValueError(f"unknown command {command!r}")


def storm_main(pipe: Connection, cores: Iterable[int] | None) -> None:
    """Entry point of a storm client process (multiprocessing target)."""
    serve_commands(pipe, cores, StormWorker)
