"""The Roomcast websocket client: reconnects, resumes rooms, and sends exactly once.

It follows section 5 of the protocol ("Losing nothing"): the highest `seq` per room from
`message` events, `join` with `since` after every reconnect, duplicates dropped by `seq`,
an outbox of sends keyed by `client_id` resent until acked, re-`auth` before the token
expires, and jittered exponential backoff chosen by the close code.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .backoff import Backoff
from .errors import (
    AuthenticationError,
    ConnectionClosedError,
    JoinError,
    ProtocolViolation,
    RequestError,
    RoomcastError,
    RoomLeftError,
    SendError,
    TokenError,
)
from .events import Event, Left, State, StateChanged, User, parse_event, parse_message
from .ratelimit import TokenBucket
from .tokens import TokenProvider, token_expiry, token_lifetime

log = logging.getLogger("roomcast_client")

#: Close codes after which reconnecting would only repeat the client's mistake.
FATAL_CODES = frozenset({4400, 1003, 1007, 1009})
#: Close codes (besides network loss) that are reconnected with the usual backoff.
RETRY_CODES = frozenset({1006, 1011, 4503, 4509})

EventCallback = Callable[[Event], Awaitable[None] | None]
StateCallback = Callable[[StateChanged], Awaitable[None] | None]

_END = object()

#: Refusals of a request that leave it worth asking again shortly.
_RETRYABLE = frozenset({"rate_limited", "unavailable"})


@dataclass(frozen=True)
class Joined:
    """The reply to `join`: the room's latest `seq` and who is connected to it now."""

    room: str
    seq: int
    members: tuple[User, ...]


@dataclass
class _Leaving:
    """A `leave` the server has not answered `left` yet: the room is still its member."""

    future: asyncio.Future[None]
    backoff: Backoff = field(default_factory=lambda: Backoff(initial=0.1, maximum=2.0))
    retry: asyncio.TimerHandle | None = None


@dataclass
class _Room:
    last_seq: int | None  # highest `seq` received from `message` events (None: none yet)
    waiters: list[asyncio.Future[Joined]] = field(default_factory=list)
    joined_on: int = -1  # the connection whose `join` frame was written
    leaving: _Leaving | None = None  # left for the application, not yet for the server


@dataclass
class _Outgoing:
    room: str
    body: str
    ai: bool
    client_id: str
    future: asyncio.Future[int]
    sent_on: int = -1

    def frame(self) -> dict[str, Any]:
        return {
            "type": "send",
            "room": self.room,
            "body": self.body,
            "ai": self.ai,
            "client_id": self.client_id,
            "id": "s:" + self.client_id,
        }


class Client:
    """A Roomcast connection that survives disconnects without losing or repeating messages.

        async with Client("http://localhost:8080", token_or_provider) as client:
            await client.join(room_id)
            seq = await client.send(room_id, "hello")
            async for event in client.events():
                ...

    Args:
        url: the server's base URL (http or https); the websocket is `<url>/ws`.
        token: an access token, or an async callable returning a fresh one each call
            (such as `PasswordLogin`). Only with a callable can the client re-`auth`
            before expiry and reconnect after 4401.
        session: an aiohttp session to use (one is made and closed otherwise).
        backoff: the reconnect schedule (default: 1 s doubling to 30 s, 5 s after 4429).
        reauth_margin: re-`auth` this many seconds before `exp` (at most a fifth of the
            token's lifetime).
        stable_after: a connection up this long resets the backoff.
        frames_per_second: the client's own cap on frames sent (the server closes 4429
            above 50 a second).
        heartbeat: seconds between the client's websocket pings (a dead peer is noticed).
        queue_events: keep events for `events()`; turn off when only callbacks are used.
    """

    def __init__(
        self,
        url: str,
        token: str | TokenProvider,
        *,
        session: aiohttp.ClientSession | None = None,
        backoff: Backoff | None = None,
        reauth_margin: float = 60.0,
        stable_after: float = 10.0,
        frames_per_second: float = 40.0,
        heartbeat: float = 20.0,
        queue_events: bool = True,
    ) -> None:
        self._url = url.rstrip("/")
        if isinstance(token, str):
            self._token: str | None = token
            self._provider: TokenProvider | None = None
        else:
            self._token = None
            self._provider = token
        self._session = session
        self._own_session = session is None
        self._backoff = backoff or Backoff()
        self._reauth_margin = reauth_margin
        self._stable_after = stable_after
        self._bucket = TokenBucket(frames_per_second, burst=frames_per_second)
        self._heartbeat = heartbeat
        self._queue_events = queue_events

        self._rooms: dict[str, _Room] = {}
        self._outbox: dict[str, _Outgoing] = {}
        self._requests: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._event_callbacks: list[EventCallback] = []
        self._state_callbacks: list[StateCallback] = []
        self._callback_tasks: set[asyncio.Task[None]] = set()

        self._state = State.CLOSED
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._conn = 0  # number of the current connection
        self._ready_conn = -1  # the connection that has answered `ready`
        self._connected = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._error: RoomcastError | None = None
        self._ended = False  # the end of `events()` is queued
        self._last_close: int | None = None  # how the latest connection ended
        self._retry_after = 0.0  # the least wait a refused upgrade asked for, in seconds
        self._last_up = 0.0  # how long it was up, in seconds

        self.user: User | None = None
        self.session_id: str | None = None
        self.reauths = 0  # successful re-authentications on an open connection
        self.connections = 0  # connections that reached `ready`

    # ----------------------------------------------------------------- observing

    @property
    def state(self) -> State:
        return self._state

    @property
    def rooms(self) -> dict[str, int | None]:
        """Joined rooms (not those being left) and the highest `seq` received in each."""
        return {
            room_id: room.last_seq for room_id, room in self._rooms.items() if room.leaving is None
        }

    def last_seq(self, room: str) -> int | None:
        found = self._joined(room)
        return None if found is None else found.last_seq

    def on_event(self, callback: EventCallback) -> None:
        """Call `callback(event)` for every event. A coroutine function runs as a task."""
        self._event_callbacks.append(callback)

    def on_state(self, callback: StateCallback) -> None:
        """Call `callback(StateChanged)` on every connection state change."""
        self._state_callbacks.append(callback)

    async def events(self) -> AsyncIterator[Event]:
        """Every event, in arrival order, until the client closes.

        Raises:
            ConnectionClosedError: the client stopped for a reason other than `close()`
                (a fatal close code, or a token that could not be renewed).
        """
        while True:
            item = await self._queue.get()
            if item is _END:
                self._queue.put_nowait(_END)  # for any other consumer
                if self._error is not None:
                    raise self._error
                return
            yield item  # type: ignore[misc]

    # ----------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self, timeout: float | None = None) -> None:
        """Start the connection and wait until it is ready (it then lives on its own).

        Raises:
            ConnectionClosedError: the first connection failed for good (bad token, ...).
        """
        if self._task is not None:
            raise RoomcastError("connect() was called already")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run(), name="roomcast-client")
        waiter = asyncio.create_task(self._connected.wait())
        try:
            async with asyncio.timeout(timeout):
                await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if self._error is not None:
            raise self._error

    async def wait_closed(self) -> None:
        """Wait until the client stops; raises the error that stopped it, if any."""
        if self._task is not None:
            await asyncio.shield(self._task)
        if self._error is not None:
            raise self._error

    async def close(self) -> None:
        """Close the connection for good. Unacked sends fail with ConnectionClosedError."""
        self._closing = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, RoomcastError):
                await self._task
        self._finish(None)
        if self._own_session and self._session is not None:
            await self._session.close()

    # ----------------------------------------------------------------- requests

    async def join(self, room: str, since: int | None = None) -> Joined:
        """Join `room` (and again after every reconnect, with `since`).

        `since`: the highest `seq` you already have; the server replays what came after.
        Without it, only messages after the join are delivered.

        Raises:
            JoinError: not_found (no such room, or not yours).
        """
        self._check_open()
        entry = self._rooms.get(room)
        if entry is None:
            entry = self._rooms[room] = _Room(last_seq=since)
        # The join wins over a pending leave: written after it, it leaves the room joined.
        self._settle_leave(entry, RequestError("joined", "joined again before the room was left"))
        future: asyncio.Future[Joined] = asyncio.get_running_loop().create_future()
        entry.waiters.append(future)
        entry.joined_on = -1
        ws = self._ws
        if ws is not None and self._ready_conn == self._conn:
            with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                await self._write_join(ws, room, entry)
        return await future

    async def leave(self, room: str) -> None:
        """Leave `room`, and return once the server has let it go.

        For the application the room is left at once: its events are dropped, `send`
        raises RoomLeftError, `rooms` no longer lists it and no reconnect joins it. Its
        `join` waiters and its sends not yet written fail with RoomLeftError; sends already
        written still get their reply. The client keeps the room with the server until its
        `left` reply: a room too busy to take the `leave` (`rate_limited`, `unavailable`)
        is asked again after a jittered wait, from 0.1 s doubling up to 2 s.

        Returns on that reply, when the connection that was in the room ends (the next
        one never joins it), or at once for a room this client is not in: the goal is
        reached. Cancelling the wait does not stop the leave.

        Raises:
            RequestError: another refusal (the room is forgotten all the same), or code
                `joined`: `join(room)` was called before the reply, and the room stays.
        """
        entry = self._rooms.get(room)
        if entry is None:
            return
        leaving = entry.leaving
        if leaving is None:
            self._abandon(room, entry)
            ws = self._ws
            if ws is None or self._ready_conn != self._conn:
                del self._rooms[room]  # no socket is in the room, and the next one won't be
                return
            loop = asyncio.get_running_loop()
            leaving = entry.leaving = _Leaving(loop.create_future())
            with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                await self._write(ws, _leave_frame(room))  # lost: the connection's end settles it
        await asyncio.shield(leaving.future)

    async def send(
        self, room: str, body: str, ai: bool = False, *, client_id: str | None = None
    ) -> int:
        """Send `body` to `room` and return its `seq` once stored.

        The message carries a `client_id` (a new uuid4 unless given) and is resent with it
        after every reconnect until acked, so it is stored exactly once.

        Raises:
            SendError: the server refused it (`code`); nothing was stored. When only the
                assistant's answer is refused (the message is stored), `events()` yields
                an `AnswerRefused` instead.
            RoomLeftError: the room was left before the message could be sent.
            ConnectionClosedError: the client stopped before the `ack`.
        """
        self._check_open()
        entry = self._joined(room)
        if entry is None:
            raise RoomLeftError(room, "not joined")
        cid = client_id or str(uuid.uuid4())
        out = self._outbox.get(cid)
        if out is None:
            future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            out = self._outbox[cid] = _Outgoing(room, body, ai, cid, future)
            ws = self._ws
            if ws is not None and entry.joined_on == self._conn:
                out.sent_on = self._conn
                with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                    await self._write(ws, out.frame())
        return await asyncio.shield(out.future)

    async def typing(self, room: str) -> None:
        """Tell the room you are typing (dropped while disconnected: it is ephemeral)."""
        ws = self._ws
        entry = self._joined(room)
        if ws is not None and entry is not None and entry.joined_on == self._conn:
            with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                await self._write(ws, {"type": "typing", "room": room})

    async def cancel(self, room: str, gen: str) -> None:
        """Stop the assistant's answer `gen` in `room`.

        Raises:
            RequestError: `forbidden` (not yours to cancel) or `not_found` (not running).
        """
        await self._request({"type": "cancel", "room": room, "gen": gen})

    async def ping(self) -> float:
        """The round trip of an application-level `ping`, in seconds."""
        started = time.monotonic()
        await self._request({"type": "ping"})
        return time.monotonic() - started

    # ----------------------------------------------------------------- internals

    def _check_open(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closing:
            raise ConnectionClosedError("the client is closed")

    def _joined(self, room_id: str) -> _Room | None:
        """The room's entry while the application is in it: not while its leave waits."""
        entry = self._rooms.get(room_id)
        return entry if entry is not None and entry.leaving is None else None

    async def _request(
        self, frame: dict[str, Any], *, wait_connected: bool = True
    ) -> dict[str, Any]:
        self._check_open()
        if wait_connected:
            await self._connected.wait()
            self._check_open()
        ws = self._ws
        if ws is None or self._ready_conn != self._conn:
            raise ConnectionClosedError("not connected")
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._requests[request_id] = future
        try:
            await self._write(ws, {**frame, "id": request_id})
            return await future
        finally:
            self._requests.pop(request_id, None)

    async def _write(self, ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> None:
        async with self._write_lock:
            await self._bucket.take()
            await ws.send_str(json.dumps(frame))

    async def _write_join(
        self, ws: aiohttp.ClientWebSocketResponse, room_id: str, entry: _Room
    ) -> None:
        entry.joined_on = self._conn
        frame: dict[str, Any] = {"type": "join", "room": room_id, "id": "j:" + room_id}
        if entry.last_seq is not None:
            frame["since"] = entry.last_seq
        await self._write(ws, frame)

    def _set_state(self, state: State, close_code: int | None = None) -> None:
        if state is self._state:
            return
        self._state = state
        if state is State.CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()
        change = StateChanged(state, close_code)
        for callback in self._state_callbacks:
            self._call(callback, change)

    def _call(self, callback: Callable[[Any], Awaitable[None] | None], arg: object) -> None:
        try:
            result = callback(arg)
        except Exception:
            log.exception("roomcast callback failed")
            return
        if inspect.isawaitable(result):

            async def run(awaitable: Awaitable[None] = result) -> None:
                try:
                    await awaitable
                except Exception:
                    log.exception("roomcast callback failed")

            task = asyncio.get_running_loop().create_task(run())
            self._callback_tasks.add(task)
            task.add_done_callback(self._callback_tasks.discard)

    def _emit(self, event: Event) -> None:
        if self._queue_events:
            self._queue.put_nowait(event)
        for callback in self._event_callbacks:
            self._call(callback, event)

    def _finish(self, error: RoomcastError | None) -> None:
        """Stop for good: fail everything pending, end `events()`, state `closed`."""
        if self._error is None and error is not None:
            self._error = error
        reason = self._error or ConnectionClosedError("the client is closed")
        for out in self._outbox.values():
            if not out.future.done():
                out.future.set_exception(reason)
        self._outbox.clear()
        for entry in self._rooms.values():
            for waiter in entry.waiters:
                if not waiter.done():
                    waiter.set_exception(reason)
            entry.waiters.clear()
        for future in self._requests.values():
            if not future.done():
                future.set_exception(reason)
        self._left_with_connection()
        self._set_state(State.CLOSED)
        self._connected.set()  # wake waiters so they see the error
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(_END)

    async def _token_for_connect(self, after_4401: bool) -> str:
        if self._provider is None:
            if after_4401 or self._token is None:
                raise AuthenticationError("the server refused the access token", 4401)
            return self._token
        expiry = token_expiry(self._token) if self._token else None
        stale = expiry is not None and expiry - time.time() < self._margin(self._token or "")
        if self._token is None or after_4401 or stale:
            old = self._token
            fresh = await self._provider()
            if after_4401 and fresh == old:
                raise AuthenticationError("the token provider gave no fresh token", 4401)
            self._token = fresh
        if self._token is None:
            raise AuthenticationError("no access token", 4401)
        return self._token

    def _margin(self, token: str) -> float:
        lifetime = token_lifetime(token)
        if lifetime is None:
            return self._reauth_margin
        return min(self._reauth_margin, lifetime / 5)

    async def _run(self) -> None:
        close_code: int | None = None
        unauthorized = 0
        first = True
        try:
            while not self._closing:
                self._set_state(State.CONNECTING if first else State.RECONNECTING, close_code)
                fatal = await self._connect_once(after_4401=close_code == 4401)
                if fatal is not None:
                    self._finish(fatal)
                    return
                if self._closing:
                    return
                close_code = self._last_close
                if self._last_up >= self._stable_after:
                    self._backoff.reset()
                if close_code in FATAL_CODES:
                    self._finish(
                        ProtocolViolation(f"the server closed with {close_code}", close_code)
                    )
                    return
                unauthorized = unauthorized + 1 if close_code == 4401 else 0
                if unauthorized > 3:
                    self._finish(AuthenticationError("refused again with fresh tokens", 4401))
                    return
                first = first and self.connections == 0
                if close_code == 4408:
                    continue
                delay = max(self._backoff.next_delay(slow=close_code == 4429), self._retry_after)
                log.info("roomcast: closed with %s; reconnecting in %.2f s", close_code, delay)
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not leave callers waiting forever
            log.exception("roomcast client failed")
            self._finish(ConnectionClosedError(f"client failure: {exc!r}"))

    async def _connect_once(self, *, after_4401: bool) -> RoomcastError | None:
        """One connection, from dialling to its close: None, or the error that ends all."""
        self._last_up = 0.0
        self._last_close = 1006
        self._retry_after = 0.0
        try:
            token = await self._token_for_connect(after_4401)
        except AuthenticationError as exc:
            return exc
        except TokenError as exc:
            if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                return AuthenticationError(f"cannot get a token: {exc}", 4401)
            return None  # the server is unreachable or busy: back off and retry
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.info("roomcast: token provider failed: %r", exc)
            return None
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            ws = await self._session.ws_connect(
                self._url + "/ws",
                headers={"Authorization": f"Bearer {token}"},
                heartbeat=self._heartbeat,
                max_msg_size=8 * 1024 * 1024,
                timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 401:
                self._last_close = 4401
            elif exc.status == 403:
                return AuthenticationError("the server refused the upgrade (403)", None)
            self._retry_after = _retry_after(exc.headers)  # a busy server's 503
            return None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.info("roomcast: cannot connect: %r", exc)
            return None
        self._conn += 1
        conn = self._conn
        self._ws = ws
        started = time.monotonic()
        reauth: asyncio.Task[None] | None = None
        try:
            ready = await self._ready(ws)
            if ready is None:
                return None
            self._ready_conn = conn
            self.connections += 1
            self.session_id = ready.get("session")
            user = ready.get("user") or {}
            self.user = User(str(user.get("id")), str(user.get("name", "")))
            for room_id, entry in list(self._rooms.items()):
                if entry.joined_on != conn and self._joined(room_id) is entry:
                    await self._write_join(ws, room_id, entry)
            for out in list(self._outbox.values()):
                if out.room not in self._rooms:
                    self._drop(out, RoomLeftError(out.room, "left"))
                elif out.sent_on != conn and self._rooms[out.room].joined_on == conn:
                    out.sent_on = conn
                    await self._write(ws, out.frame())
            self._set_state(State.CONNECTED)
            reauth = asyncio.create_task(self._reauth_loop(ws))
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    try:
                        frame = json.loads(message.data)
                    except ValueError:
                        continue
                    if isinstance(frame, dict):
                        self._on_frame(frame)
                elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                    break
        except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
            log.info("roomcast: connection lost: %r", exc)
        finally:
            if reauth is not None:
                reauth.cancel()
            self._ws = None
            self._ready_conn = -1
            self._last_up = time.monotonic() - started
            code = ws.close_code
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()
            self._last_close = 1006 if code in (None, 1000) else code
            lost = ConnectionClosedError("connection lost", self._last_close)
            for future in self._requests.values():
                if not future.done():
                    future.set_exception(lost)
            self._requests.clear()
            self._left_with_connection()
        return None

    async def _ready(self, ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any] | None:
        async with asyncio.timeout(15):
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    frame = json.loads(message.data)
                    if isinstance(frame, dict) and frame.get("type") == "ready":
                        return frame
                elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                    break
        return None

    async def _reauth_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Re-`auth` on the open socket shortly before the token expires, again and again."""
        if self._provider is None:
            return
        while True:
            token = self._token or ""
            expiry = token_expiry(token)
            if expiry is None:
                return
            await asyncio.sleep(max(0.0, expiry - self._margin(token) - time.time()))
            try:
                fresh = await self._provider()
            except TokenError as exc:
                log.warning("roomcast: cannot refresh the token: %s", exc)
                if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                    return  # the server will close with 4401; reconnecting then stops
                await asyncio.sleep(1.0)
                continue
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.info("roomcast: token refresh failed, retrying: %r", exc)
                await asyncio.sleep(1.0)
                continue
            self._token = fresh
            for _ in range(5):
                try:
                    await self._request({"type": "auth", "token": fresh}, wait_connected=False)
                except RequestError as exc:
                    if exc.code != "unavailable":
                        log.warning("roomcast: re-auth refused: %s", exc)
                        return
                    await asyncio.sleep(1.0)
                    continue
                self.reauths += 1
                break

    def _drop(self, out: _Outgoing, error: RoomcastError) -> None:
        self._outbox.pop(out.client_id, None)
        if not out.future.done():
            out.future.set_exception(error)

    def _forget(self, room_id: str, error: RoomcastError) -> None:
        """The server no longer has the room for us: fail its waiters, end its leave."""
        entry = self._rooms.pop(room_id, None)
        if entry is not None:
            for waiter in entry.waiters:
                if not waiter.done():
                    waiter.set_exception(error)
            entry.waiters.clear()
            self._settle_leave(entry)

    def _abandon(self, room_id: str, entry: _Room) -> None:
        """Fail the room's `join` waiters and its sends not yet written on this
        connection; a send written already waits for its reply: it may be stored."""
        for waiter in entry.waiters:
            if not waiter.done():
                waiter.set_exception(RoomLeftError(room_id, "left"))
        entry.waiters.clear()
        ready = self._ws is not None and self._ready_conn == self._conn
        for out in list(self._outbox.values()):
            if out.room == room_id and not (ready and out.sent_on == self._conn):
                self._drop(out, RoomLeftError(room_id, "left"))

    def _settle_leave(self, entry: _Room, error: RoomcastError | None = None) -> None:
        """End the room's pending leave: done, or failed with `error`."""
        leaving, entry.leaving = entry.leaving, None
        if leaving is None:
            return
        if leaving.retry is not None:
            leaving.retry.cancel()
        if leaving.future.done():
            return
        if error is None:
            leaving.future.set_result(None)
        else:
            leaving.future.set_exception(error)

    def _left_with_connection(self) -> None:
        """The connection is gone, and so are the rooms it was leaving."""
        for room_id, entry in list(self._rooms.items()):
            if entry.leaving is not None:
                del self._rooms[room_id]
                self._settle_leave(entry)

    def _on_left(self, room_id: str, reason: str | None, re: object) -> None:
        if reason is not None or re is None:  # the server ended our stay
            entry = self._rooms.get(room_id)
            if entry is None:
                return
            reason = reason or "removed"
            leaving = entry.leaving is not None  # then left already, for the application
            self._forget(room_id, RoomLeftError(room_id, reason))
            if leaving:
                return
        elif re == _leave_id(room_id):  # the reply to our leave
            entry = self._rooms.get(room_id)
            if entry is None or entry.leaving is None:
                return  # a join took the room back meanwhile
            del self._rooms[room_id]
            self._settle_leave(entry)
        else:
            return
        self._emit(Left(room_id, reason))

    def _on_leave_refused(self, room_id: str, code: str, message: str) -> None:
        """Too busy (or unavailable): the member is still in the room, so ask again after
        a jittered wait, on this connection only; the next one never joins the room."""
        entry = self._rooms.get(room_id)
        leaving = None if entry is None else entry.leaving
        if entry is None or leaving is None:
            return
        if code not in _RETRYABLE:
            del self._rooms[room_id]
            self._settle_leave(entry, RequestError(code, message))
            return
        ws = self._ws
        if ws is not None:
            leaving.retry = asyncio.get_running_loop().call_later(
                leaving.backoff.next_delay(), self._leave_again, ws, room_id, leaving
            )

    def _leave_again(
        self, ws: aiohttp.ClientWebSocketResponse, room_id: str, leaving: _Leaving
    ) -> None:
        entry = self._rooms.get(room_id)
        if self._ws is not ws or entry is None or entry.leaving is not leaving:
            return

        async def write() -> None:
            with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                await self._write(ws, _leave_frame(room_id))

        task = asyncio.get_running_loop().create_task(write())
        self._callback_tasks.add(task)
        task.add_done_callback(self._callback_tasks.discard)

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        re = frame.get("re")
        if kind == "message":
            entry = self._joined(frame.get("room", ""))
            if entry is None:
                return
            message = parse_message(frame)
            if entry.last_seq is not None and message.seq <= entry.last_seq:
                return  # already delivered (a replay after a reconnect)
            entry.last_seq = message.seq
            self._emit(message)
        elif kind == "ack":
            if isinstance(re, str) and re.startswith("s:"):
                out = self._outbox.pop(re[2:], None)
                if out is not None and not out.future.done():
                    out.future.set_result(int(frame["seq"]))
            else:
                self._resolve(re, frame)
        elif kind == "error":
            self._on_error(frame)
        elif kind == "joined":
            room_id = frame.get("room", "")
            entry = self._joined(room_id)
            if entry is None:
                return
            if entry.last_seq is None:
                entry.last_seq = int(frame["seq"])
            members = tuple(
                User(str(m.get("id")), str(m.get("name", ""))) for m in frame.get("members", [])
            )
            joined = Joined(room_id, int(frame["seq"]), members)
            for waiter in entry.waiters:
                if not waiter.done():
                    waiter.set_result(joined)
            entry.waiters.clear()
        elif kind == "left":
            self._on_left(frame.get("room", ""), frame.get("reason"), re)
        elif kind in ("ready", "pong"):
            if kind == "ready" and frame.get("session"):
                self.session_id = frame["session"]
            self._resolve(re, frame)
        else:
            event = parse_event(frame)
            if event is not None and self._joined(event.room) is not None:
                self._emit(event)

    def _resolve(self, re: object, frame: dict[str, Any]) -> None:
        if isinstance(re, int):
            future = self._requests.get(re)
            if future is not None and not future.done():
                future.set_result(frame)

    def _on_error(self, frame: dict[str, Any]) -> None:
        code = str(frame.get("code", "internal"))
        message = str(frame.get("message", ""))
        re = frame.get("re")
        if isinstance(frame.get("seq"), int):  # the message is stored; only its answer is refused
            event = parse_event(frame)
            if event is not None and self._joined(event.room) is not None:
                self._emit(event)
        elif isinstance(re, str) and re.startswith("s:"):
            out = self._outbox.get(re[2:])
            if out is None:
                return
            self._drop(out, SendError(code, message, room=out.room, client_id=out.client_id))
        elif isinstance(re, str) and re.startswith("j:"):
            room_id = re[2:]
            entry = self._rooms.get(room_id)
            if entry is None:
                return
            if code in _RETRYABLE:
                ws = self._ws
                if ws is not None:
                    asyncio.get_running_loop().call_later(
                        1.0, self._rejoin_later, ws, room_id, entry
                    )
                return
            self._forget(room_id, JoinError(code, message))
        elif isinstance(re, str) and re.startswith("l:"):
            self._on_leave_refused(re[2:], code, message)
        elif isinstance(re, int):
            future = self._requests.get(re)
            if future is not None and not future.done():
                future.set_exception(RequestError(code, message))
        else:
            log.info("roomcast: error %s: %s", code, message)

    def _rejoin_later(
        self, ws: aiohttp.ClientWebSocketResponse, room_id: str, entry: _Room
    ) -> None:
        if self._ws is ws and self._joined(room_id) is entry:
            task = asyncio.get_running_loop().create_task(self._write_join(ws, room_id, entry))
            self._callback_tasks.add(task)
            task.add_done_callback(self._callback_tasks.discard)


def _leave_id(room_id: str) -> str:
    """The `id` of a `leave` frame, so its reply names the room whatever the connection."""
    return "l:" + room_id


def _leave_frame(room_id: str) -> dict[str, Any]:
    return {"type": "leave", "room": room_id, "id": _leave_id(room_id)}


def _retry_after(headers: Mapping[str, str] | None) -> float:
    """Seconds from a `Retry-After` header (the protocol's 503 refusals); 0 without one."""
    value = (headers or {}).get("Retry-After", "")
    return float(value) if value.isdigit() else 0.0
