"""The websocket endpoint (docs/protocol.md, WebSocket): the only module that holds sockets.

One connection is three parts: this module's read loop (decode, validate, rate-limit,
hand to the session actor), the session actor (actors/session.py) that does the work,
and a writer task that drains the session's bounded outbound queue into the socket. A
client that stops reading fills its own queue and is closed with 4509; nobody waits for it.
The bytes themselves (frames, the direct-write queue, the heartbeat) are in `ws_wire`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import WSMessage, WSMsgType, web
from aiohttp.http_websocket import WebSocketWriter

from actors.close_reason import CloseReason
from actors.errors import ActorError, MailboxFull
from actors.events import error_frame
from actors.hub import Hub
from actors.ports import UserRef, Verified
from actors.requests import Auth, Join, decode_frame, parse_request, request_id
from actors.session import SessionActor
from errors import Forbidden, Invalid, Unauthorized, Unavailable
from server.admission import Admission, AdmissionLimits, RefusalCause
from server.auth.guard import bearer_token
from server.http.json import error_response
from server.metrics import Metrics
from server.middleware import error_answer
from server.state import HUB, METRICS, SETTINGS, TOKENS
from server.ws_close import CloseCode
from server.ws_wire import (
    DIRECT_WRITE_LIMIT,
    PING_FRAME,
    Heartbeat,
    SocketOutbound,
    text_frame,
)
from storage.db import unavailable_when_down

logger = logging.getLogger(__name__)

MAX_FRAME = 64 * 1024  # bytes of one text frame (a whole message), this many included
AUTH_DEADLINE = 10.0
CLOSE_TIMEOUT = 2.0
BACKPRESSURE_POLL = 0.01  # how often a backed-up writer looks whether the socket drained

#: The close code for each reason an actor gives (the reason text goes with it).
CLOSE_CODES: dict[CloseReason, CloseCode] = {
    CloseReason.TOKENS_REVOKED: CloseCode.NOT_AUTHENTICATED,
    CloseReason.SIGN_IN_REVOKED: CloseCode.NOT_AUTHENTICATED,
    CloseReason.TOKEN_EXPIRED: CloseCode.NOT_AUTHENTICATED,
    CloseReason.INVALID_TOKEN: CloseCode.NOT_AUTHENTICATED,
    CloseReason.ROOM_ACCESS_CHANGED: CloseCode.INTERNAL_ERROR,
    CloseReason.SLOW_CONSUMER: CloseCode.SLOW_CONSUMER,
    CloseReason.SHUTDOWN: CloseCode.SHUTTING_DOWN,
}


def ws_transport(ws: web.WebSocketResponse) -> asyncio.Transport | None:
    """The socket's transport (uvloop's is not an `asyncio.Transport` subclass, but quacks)."""
    request = ws._req  # noqa: SLF001 - aiohttp keeps the prepared request here
    transport = request.transport if request is not None else None
    return transport


async def verify_token(app: web.Application, token: str) -> Verified:
    """The user behind an access token, when it expires, its sign-in.

    Raises:
        Unauthorized: the token is bad, expired or revoked.
        Unavailable: it cannot be checked now (Redis or the database unreachable, or
            their pools exhausted): after the upgrade, the error middleware could no
            longer answer for it.
    """
    with unavailable_when_down():  # a reconnect storm checks the same tokens: cached
        user, claims = await app[TOKENS].authenticate(token, cached=True)
    return Verified(UserRef(user.id, user.name), float(claims.expires_at), claims.session_id)


def _origin_key(url: str) -> tuple[str, str, int] | None:
    """Scheme, host and port of an origin or URL, the default port written out; None if
    it names no host (`null`, garbage)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:  # a port that is no number, an unclosed IPv6 bracket
        return None
    if not parts.hostname or port is None:
        return None
    return parts.scheme.lower(), parts.hostname, port


def origin_allowed(request: web.Request, origin: str) -> bool:
    """Allowed origins from settings, PUBLIC_URL's, or the one the client reached (scheme
    and host, as a trusted proxy forwards them): same-origin pages."""
    settings = request.app[SETTINGS]
    if origin.rstrip("/") in settings.allowed_origins or "*" in settings.allowed_origins:
        return True
    own = (settings.public_url, f"{request.scheme}://{request.host}")
    key = _origin_key(origin)
    return key is not None and key in {_origin_key(url) for url in own}


@dataclass(slots=True)
class TokenBucket:
    """Frames per second with a burst allowance, per connection."""

    rate: float
    burst: float
    tokens: float = 0.0
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


#: The app's heartbeat; `setup` starts its sweeps with the app and stops them with it.
HEARTBEAT_KEY = web.AppKey("ws heartbeat", Heartbeat)
#: The app's admission control; `setup` starts its lag watch with the app.
ADMISSION_KEY = web.AppKey("ws admission", Admission)


def _shed_upgrade_leftovers(ws: web.WebSocketResponse) -> None:
    """Let go of what aiohttp keeps per connection that an upgraded server socket never uses.

    After the upgrade every byte goes to the websocket reader, so the HTTP request parser
    and the queue of parsed requests are done with (aiohttp's own code reads the parser as
    optional, and a request handler whose response forced the close never looks at the
    queue again but to see it empty: an empty tuple, shared). A server's writer never
    masks and, without compression, never locks or shields a send: its random-bits
    function, lock and task set go too. Together about a kilobyte and a half per idle
    connection. Nothing is touched unless the objects look as expected (the websocket
    reader installed, the queue empty, the writer unmasked and uncompressed).
    """
    request: web.BaseRequest | None = getattr(ws, "_req", None)  # the prepared request
    protocol = request.protocol if request is not None else None
    if protocol is None or protocol._payload_parser is None:  # noqa: SLF001
        return
    protocol._parser = None  # noqa: SLF001
    if isinstance(protocol._messages, deque) and not protocol._messages:  # noqa: SLF001
        protocol._messages = ()  # type: ignore[assignment]  # noqa: SLF001
    writer: WebSocketWriter | None = getattr(ws, "_writer", None)
    if writer is not None and not writer.use_mask and not writer.compress:
        writer.get_random_bits = _never_masks  # type: ignore[assignment]
        writer._send_lock = None  # type: ignore[assignment]  # noqa: SLF001
        writer._background_tasks = None  # type: ignore[assignment]  # noqa: SLF001


def _never_masks() -> int:
    """A server's frames are never masked (RFC 6455, 5.1): no random bits are ever drawn."""
    raise AssertionError("a server websocket does not mask its frames")


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait until it has ended; whatever else it raised is raised here.

    Only the task's own cancellation is absorbed. `await task` inside
    `suppress(CancelledError)` would also swallow ours (the caller's task cancelled while
    it waits, which cancels the awaited task too): `asyncio.wait` never raises the task's
    outcome, so a `CancelledError` out of it is the caller's and propagates.
    """
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled():
        task.result()


class Connection:
    """One authenticated websocket: read loop, writer task, and the way to close.

    Slotted, as every idle connection holds one: no per-instance dict.
    """

    __slots__ = (
        "ws",
        "hub",
        "bucket",
        "heartbeat",
        "metrics",
        "seen",
        "pinged",
        "_session",
        "_writer",
        "_closing",
        "_reading",
        "_read_over",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        hub: Hub,
        bucket: TokenBucket,
        heartbeat: Heartbeat,
        metrics: Metrics | None = None,
    ) -> None:
        self.ws = ws
        self.hub = hub
        self.bucket = bucket
        self.heartbeat = heartbeat
        self.metrics = metrics
        self.seen = heartbeat.round  # the round of the last frame received
        self.pinged: int | None = None  # the round of a ping not answered yet
        self._session: SessionActor | None = None  # set by `serve`
        self._writer: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._reading = True
        self._read_over: asyncio.Future[None] | None = None  # made when a close waits

    def close_soon(self, code: CloseCode, reason: str) -> None:
        """Close with `code` from any task; the first code wins."""
        if self._closing is None:
            self._closing = asyncio.create_task(self._close(code, reason))

    def close_for(self, reason: CloseReason) -> None:
        """Close for an actor's `reason`, with the code `CLOSE_CODES` gives it."""
        self.close_soon(CLOSE_CODES[reason], reason)

    def beat(self, now: int) -> None:
        """A heartbeat sweep: drop the peer if it left our ping unanswered, else ping it
        when it has been quiet for two rounds."""
        if self.pinged is not None:
            if self.seen < self.pinged:
                logger.info("ws peer silent after a ping; dropping it")
                self._abort()
                return
            self.pinged = None
        if self.seen <= now - 2:
            transport = ws_transport(self.ws)
            if transport is not None and not transport.is_closing():
                transport.write(PING_FRAME)  # whole frames only: it never splits another
                self.pinged = now

    def _abort(self) -> None:
        transport = ws_transport(self.ws)
        if transport is not None:
            transport.abort()  # the read loop then ends and the session with it

    async def _close(self, code: CloseCode, reason: str) -> None:
        """Send the close frame, then let the read loop take the peer's reply.

        `ws.close()` from a task other than the reader closes the transport at once, so a
        client's close reply can hit a closed socket and the client reports 1006 instead
        of our code. Sending the frame ourselves and letting the reader finish the
        handshake keeps the code intact.
        """
        logger.info("ws closing code=%d reason=%s", code, reason)
        await self._stop_writer()  # it may be stuck on a peer that does not read
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                if not self.ws.closed:
                    payload = code.to_bytes(2, "big") + reason.encode()[:120]
                    await self.ws.send_frame(payload, WSMsgType.CLOSE)
                if self._reading:
                    self._read_over = asyncio.get_running_loop().create_future()
                    await self._read_over
        except (TimeoutError, ConnectionError):
            # A peer that does not read cannot take the close frame either.
            transport = ws_transport(self.ws)
            if transport is not None:
                transport.close()

    async def serve(self, session: SessionActor) -> None:
        """Hand every frame to the session until the peer or the server closes, with the
        writer beside it when frames must wait; tidy up whichever way it ends.

        Once closing, frames are dropped but still read: the loop ends on the peer's
        close reply, which completes the handshake (or on the close timeout). The read
        loop is this handler's own coroutine: one suspended frame less per connection.
        """
        self._start_writer_on_backlog(session)
        self.heartbeat.connections.add(self)
        ws = self.ws
        _shed_upgrade_leftovers(ws)
        try:
            while not ws.closed:
                message = await ws.receive()
                self.seen = self.heartbeat.round
                if message.type is WSMsgType.TEXT:  # the hot path stays in the loop
                    self._received_text(session, message.data)
                elif not await self._received_other(message):
                    return
        finally:
            await self._end(session)

    def _start_writer_on_backlog(self, session: SessionActor) -> None:
        """Start the writer only when a frame has to wait: most sessions never need one
        (their frames go straight into the socket), which keeps idle sessions small. The
        hook is a bound method, not a closure: no function and cells per connection."""
        self._session = session
        session.outbound.on_backlog = self._start_writer
        if len(session.outbound):
            self._start_writer()

    def _start_writer(self) -> None:
        session = self._session
        if self._writer is None and session is not None:
            self._writer = asyncio.create_task(self.write(session), name=session.name)

    def _received_text(self, session: SessionActor, text: str) -> None:
        """A text frame: within the rate, to the session; dropped once closing."""
        if self._closing is not None:
            return
        if self.bucket.take():
            self.handle_text(session, text)
        else:
            self.close_soon(CloseCode.TOO_MANY_FRAMES, "too many frames per second")

    async def _received_other(self, message: WSMessage) -> bool:
        """Any frame but text: answer pings, refuse binary; False when the loop must end
        (closed, closing, or an error: aiohttp sent 1009 for a big frame)."""
        kind = message.type
        if kind is WSMsgType.PING:
            if not self.bucket.take():
                self.close_soon(CloseCode.TOO_MANY_FRAMES, "too many frames per second")
            elif self._closing is None:
                await self.ws.pong(message.data)
        elif kind is WSMsgType.BINARY:
            if self._closing is None:
                self.close_soon(CloseCode.UNSUPPORTED_DATA, "binary frames are not accepted")
        elif kind is WSMsgType.CLOSE:
            await self._close_received()
            return False
        elif kind is not WSMsgType.PONG:
            return False
        return True

    async def _close_received(self) -> None:
        """The peer's close frame: its own close, which we answer, or the reply to ours,
        which completes the handshake, so only the socket is left to close. (aiohttp's
        autoclose would answer that reply too: a second close frame, which browsers
        report as an error.)"""
        if self._closing is None:
            await self.ws.close(drain=False)
            return
        transport = ws_transport(self.ws)
        if transport is not None:
            transport.close()

    async def _end(self, session: SessionActor) -> None:
        """The read loop is over: release a close waiting for it, end the session, stop the
        writer, and let the close finish."""
        self._reading = False
        self.heartbeat.connections.discard(self)
        if self._read_over is not None and not self._read_over.done():
            self._read_over.set_result(None)
        await self.hub.close_session(session)
        await self._stop_writer()
        if self._closing is not None:
            await self._closing

    async def _stop_writer(self) -> None:
        writer = self._writer
        if writer is None or writer is asyncio.current_task():
            return
        with contextlib.suppress(ConnectionError):  # a peer gone mid-write: nothing to do
            await cancel_and_wait(writer)

    async def write(self, session: SessionActor) -> None:
        """Drain the outbound queue into the socket until it closes.

        Everything queued goes out in one write (the frames joined), then the writer waits
        while the socket is backed up: that wait is what lets a slow reader's queue grow
        to the hard limit, and the 4509 that follows.
        """
        outbound = session.outbound
        transport = ws_transport(self.ws)
        while frames := await outbound.take():
            if transport is None or transport.is_closing():
                return
            outbound.writing = True
            try:
                transport.write(b"".join([text_frame(data) for data in frames]))
                while transport.get_write_buffer_size() > DIRECT_WRITE_LIMIT:
                    if transport.is_closing():
                        return
                    await asyncio.sleep(BACKPRESSURE_POLL)
            finally:
                outbound.writing = False
        if session.outbound.overflowed:
            self.close_for(CloseReason.SLOW_CONSUMER)

    def handle_text(self, session: SessionActor, text: str) -> None:
        """Decode one frame and give it to the session; a frame that is no request, or a
        session that has ended, closes the connection (`close_soon`)."""
        try:
            data = decode_frame(text)
        except ValueError:
            self.close_soon(CloseCode.PROTOCOL_VIOLATION, "frame is not JSON")
            return
        if not isinstance(data, dict) or "type" not in data:
            self.close_soon(CloseCode.PROTOCOL_VIOLATION, "frame must be a JSON object with a type")
            return
        try:
            request = parse_request(data)
            session.tell(request)
        except Invalid as exc:
            session.outbound.put(error_frame("invalid", exc.message, request_id(data)), "error")
        except MailboxFull:
            session.outbound.put(
                error_frame("rate_limited", "too many requests in flight", request_id(data)),
                "error",
            )
        except ActorError:
            self.close_soon(CloseCode.INTERNAL_ERROR, "session ended")
        else:
            # A resuming join; the session times every join (`Hub`'s `on_joined`).
            if type(request) is Join and request.since is not None and self.metrics is not None:
                self.metrics.ws_resumes.inc()


async def _first_frame_auth(
    app: web.Application, ws: web.WebSocketResponse
) -> tuple[Verified, Any] | None:
    """Wait for the `auth` frame; None (and the socket closed, the refusal counted) when it
    does not come right."""
    refusals = app[METRICS].ws_refusals
    try:
        message = await ws.receive(timeout=AUTH_DEADLINE)
    except TimeoutError:
        refusals[RefusalCause.AUTH_TIMEOUT].inc()
        await ws.close(code=CloseCode.AUTH_TIMEOUT, message=b"no auth within 10 s")
        return None
    if message.type is WSMsgType.CLOSE:  # the client has gone: nothing refused
        await ws.close()  # the reply to its close frame
        return None
    if message.type is not WSMsgType.TEXT:
        binary = message.type is WSMsgType.BINARY
        code = CloseCode.UNSUPPORTED_DATA if binary else CloseCode.NOT_AUTHENTICATED
        if not ws.closed:  # else the client has gone: nothing refused
            refusals[RefusalCause.AUTH].inc()
            await ws.close(code=code, message=b"authenticate first")
        return None
    try:
        request = parse_request(orjson.loads(message.data))
        if not isinstance(request, Auth):
            raise Unauthorized("the first frame must be auth")
        verified = await verify_token(app, request.token)
    except (orjson.JSONDecodeError, Invalid, Unauthorized):
        refusals[RefusalCause.AUTH].inc()
        await ws.close(code=CloseCode.NOT_AUTHENTICATED, message=b"not authenticated")
        return None
    except Unavailable:
        # The token could not be checked (Redis or the database down or swamped): not
        # the client's fault, so not 4401; it hears why, then reconnects with backoff as
        # after any 1011.
        refusals[RefusalCause.UNAVAILABLE].inc()
        reason = "authentication is unavailable; reconnect shortly"
        await ws.send_str(error_frame("unavailable", reason, request.id).decode())
        await ws.close(code=CloseCode.INTERNAL_ERROR, message=b"authentication unavailable")
        return None
    return verified, request.id


def _refused(request: web.Request) -> web.Response | None:
    """The 503 for an upgrade the instance is too busy to take, or None to go on. Checked
    before anything else: it reads three numbers and touches no storage."""
    admission = request.app[ADMISSION_KEY]
    cause = admission.refusal()
    if cause is None:
        return None
    request.app[METRICS].ws_refusals[cause].inc()
    admission.refused(cause)
    error = Unavailable("the server is busy; reconnect after Retry-After, with backoff")
    response = error_response(error, headers={"Retry-After": str(admission.retry_after())})
    response.force_close()  # a refused client comes back later: free its socket now
    return response


async def _header_auth(request: web.Request) -> Verified | None:
    """The user of the upgrade's `Authorization` header, if it has one; a bad or
    uncheckable token refuses the upgrade (401, 503), counted by cause."""
    if "Authorization" not in request.headers:
        return None
    refusals = request.app[METRICS].ws_refusals
    try:
        return await verify_token(request.app, bearer_token(request))
    except Unauthorized:
        refusals[RefusalCause.AUTH].inc()
        raise
    except Unavailable:
        refusals[RefusalCause.UNAVAILABLE].inc()
        raise


async def websocket(request: web.Request) -> web.StreamResponse:
    """`GET /ws`: admit, check origin and header token, upgrade, authenticate, then serve.

    An upgrade is handed here with no middleware frame around it (`upgrade_middleware`), so
    its errors get the protocol's shape here, as error_middleware would give them. The
    handshake is a coroutine of its own, over once the socket is served: this frame is the
    only one of ours that an idle connection keeps suspended.
    """
    try:
        opened = await _handshake(request)
        if isinstance(opened, web.StreamResponse):
            return opened
        ws, connection, session = opened
        del opened  # the handshake's leftovers need not live as long as the socket
        await connection.serve(session)
        return ws
    except Exception as exc:  # error_middleware's place, for an upgrade
        return error_answer(request, exc)


async def _handshake(
    request: web.Request,
) -> web.StreamResponse | tuple[web.WebSocketResponse, Connection, SessionActor]:
    """Admit, check origin and header token, upgrade and authenticate: the socket, its
    connection and session; or the answer that refused it (a socket closed already, for a
    failed first-frame auth)."""
    started = time.perf_counter()
    refused = _refused(request)
    if refused is not None:
        return refused
    app = request.app
    metrics = app[METRICS]
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(request, origin):
        metrics.ws_refusals[RefusalCause.ORIGIN].inc()
        raise Forbidden("origin not allowed")
    with app[ADMISSION_KEY].handshake():
        header_auth = await _header_auth(request)
        # No permessage-deflate: compressing each frame once per recipient would undo the
        # encode-once fan-out, and chat frames are small. No aiohttp heartbeat or autoping:
        # `Heartbeat` pings for every connection and the read loop answers pings.
        # aiohttp refuses a message of `max_msg_size` bytes already (1009), hence the + 1.
        # autoclose off: `Connection._close_received` answers a close frame only when the
        # peer started the close.
        ws = web.WebSocketResponse(
            max_msg_size=MAX_FRAME + 1, autoping=False, autoclose=False, compress=False
        )
        await ws.prepare(request)
        authed = (header_auth, None) if header_auth else await _first_frame_auth(app, ws)
        if authed is None:
            return ws
        connection, session = _open(app, ws, authed)
        metrics.ws_auth_latency.observe(time.perf_counter() - started)
        metrics.ws_connects.inc()
    return ws, connection, session


def _open(
    app: web.Application, ws: web.WebSocketResponse, authed: tuple[Verified, Any]
) -> tuple[Connection, SessionActor]:
    """The connection and session of an authenticated socket, `ready` on its way."""
    verified, re = authed
    settings, hub, heartbeat = app[SETTINGS], app[HUB], app[HEARTBEAT_KEY]
    bucket = TokenBucket(settings.ws_frames_per_second, settings.ws_burst)
    connection = Connection(ws, hub, bucket, heartbeat, app[METRICS])
    outbound = SocketOutbound(
        ws_transport(ws),
        soft_limit=settings.ws_outbound_soft_limit,
        hard_limit=settings.ws_outbound_hard_limit,
    )
    session = hub.open_session(verified, connection.close_for, outbound)
    session.ready(re)
    return connection, session


async def _heartbeat(app: web.Application) -> AsyncIterator[None]:
    heartbeat = app[HEARTBEAT_KEY] = Heartbeat(app[SETTINGS].ws_heartbeat)
    sweeps = asyncio.create_task(heartbeat.run(), name="ws heartbeat")
    yield
    await cancel_and_wait(sweeps)


async def _admission(app: web.Application) -> AsyncIterator[None]:
    """Admission control for the app's life, its numbers read by /metrics when scraped."""
    settings, metrics, heartbeat = app[SETTINGS], app[METRICS], app[HEARTBEAT_KEY]
    limits = AdmissionLimits(
        max_handshakes=settings.ws_max_handshakes,
        max_loop_lag=settings.ws_max_loop_lag,
        max_connections=settings.ws_max_connections,
        retry_after=settings.ws_retry_after,
    )
    admission = app[ADMISSION_KEY] = Admission(limits, lambda: len(heartbeat.connections))
    metrics.ws_open.set_function(lambda: len(heartbeat.connections))
    metrics.ws_handshakes.set_function(lambda: admission.handshakes)
    metrics.loop_lag.set_function(admission.current_lag)
    watch = asyncio.create_task(admission.watch_lag(), name="ws admission lag")
    yield
    await cancel_and_wait(watch)


def setup(app: web.Application) -> None:
    app.router.add_get("/ws", websocket)
    app.cleanup_ctx.append(_heartbeat)
    app.cleanup_ctx.append(_admission)
