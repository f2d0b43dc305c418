"""The SessionActor: one per websocket connection. It turns client requests into room work.

Requests arrive already decoded (actors/requests.py) from the websocket layer, which is
the only code touching the socket; replies and events leave through the session's
`OutboundQueue`. A `send` does not hold up the next request while it is being stored:
the ack is queued when the room's commit completes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from actors.actor import Actor
from actors.close_reason import Closer, CloseReason
from actors.errors import ActorCrashed, ActorError, AskTimeout, MailboxFull
from actors.events import EventKind, error_frame, frame
from actors.failed_tells import FailedTells
from actors.outbound import OutboundQueue
from actors.ports import RoomDirectory, UserRef, Verified
from actors.requests import Auth, Cancel, Join, Leave, Ping, Request, Send, Typing
from actors.room import RoomActor
from actors.room_messages import (
    CancelGeneration,
    Enter,
    Exit,
    LeftReason,
    Member,
    Post,
    UserTyping,
)
from errors import Forbidden, Invalid, NotFound, RateLimited, RoomcastError, Unauthorized
from storage.messages import Appended, Author, NewMessage
from storage.types import is_id

logger = logging.getLogger(__name__)

#: Verifies an access token: its user, expiry and sign-in. Raises Unauthorized.
Verifier = Callable[[str], Awaitable[Verified]]

#: Told how long each successful join took, in seconds (the server's latency histogram).
JoinObserver = Callable[[float], None]


@dataclass(frozen=True, slots=True)
class TeamLeft:
    """The hub's word, not a client's: the user is no longer in the team (removed, or they
    left it), so the session leaves the team's rooms."""

    team_id: str


class JoinedRoom(NamedTuple):
    """A room the session is in: its actor, and the team it belongs to (a team's members
    lose its rooms with it, `TeamLeft`). A tuple: every idle session holds one per room."""

    actor: RoomActor
    team_id: str


@dataclass(frozen=True, slots=True)
class SessionLimits:
    join_timeout: float = 10.0
    # How long a closing session waits for each room to let it go.
    leave_timeout: float = 10.0
    expiry_grace: float = 60.0
    # Seconds of quiet before the server pings; every `ready` tells the client.
    heartbeat: float = 25.0


class SessionActor(Actor[Request | TeamLeft]):
    """One connection's state: its user, its rooms, its outbound queue.

    On demand: a connection is mostly quiet, so its actor has a task only while its
    client's requests wait (thousands of idle connections cost no task each).
    """

    on_demand = True

    __slots__ = (
        "session_id",
        "user",
        "token_expires_at",
        "family_id",
        "outbound",
        "joined",
        "_rooms",
        "_directory",
        "_verify",
        "_close",
        "_limits",
        "_tells",
        "_on_joined",
    )

    def __init__(
        self,
        session_id: str,
        user: UserRef,
        token_expires_at: float,
        *,
        family_id: str,
        rooms: Callable[[str], RoomActor],
        directory: RoomDirectory,
        verify: Verifier,
        outbound: OutboundQueue,
        close: Closer,
        limits: SessionLimits = SessionLimits(),
        mailbox_size: int = 256,
        tells: FailedTells | None = None,
        on_joined: JoinObserver | None = None,
    ) -> None:
        super().__init__(f"session:{session_id}", mailbox_size=mailbox_size)
        self.session_id = session_id
        self.user = user
        self.token_expires_at = token_expires_at
        self.family_id = family_id  # the sign-in of the token it lives by (the last auth)
        self.outbound = outbound
        self.joined: dict[str, JoinedRoom] = {}  # by room id
        self._rooms = rooms
        self._directory = directory
        self._verify = verify
        self._close = close
        self._limits = limits
        self._tells = tells or FailedTells()
        self._on_joined = on_joined

    def expired(self, now: float | None = None) -> bool:
        """True once the token expired more than the grace period ago without a refresh."""
        now = time.time() if now is None else now
        return now > self.token_expires_at + self._limits.expiry_grace

    def close(self, reason: CloseReason) -> None:
        """Ask the websocket layer to close the connection, for `reason`."""
        self._close(reason)

    async def on_stop(self) -> None:
        await self.leave_rooms()

    async def leave_rooms(self) -> None:
        """Leave every joined room and wait until each has let this member go (and told
        the others the user went offline, if this was their last session there).

        Until then the outbound queue must stay open: a room that finds it closed drops
        the member as overflowed instead. `on_stop` calls this; the hub calls it again
        after a stop that skipped `on_stop` (a crash), when no task of this actor runs.
        """
        rooms = [joined.actor for joined in self.joined.values()]
        self.joined.clear()
        await asyncio.gather(*[self._leave_and_wait(room) for room in rooms])

    async def _leave_and_wait(self, room: RoomActor) -> None:
        try:
            await room.ask(
                lambda reply: Exit(self.session_id, reply=reply),
                timeout=self._limits.leave_timeout,
            )
        except ActorError as exc:
            # Stopped (nothing more comes from it), overloaded or stuck: it drops this
            # member at its next event, which finds the queue closed.
            self._tells.failed(room, "Exit", exc, sender=self.name)

    async def on_receive(self, message: Request | TeamLeft) -> None:
        if isinstance(message, TeamLeft):
            self._lose([r for r, j in self.joined.items() if j.team_id == message.team_id])
            return
        try:
            await self._handle(message)
        except RoomcastError as exc:
            self._put(error_frame(exc.code, exc.message, message.id), EventKind.ERROR)
        except Exception:
            # Whatever it was, the client hears of it; the supervisor logs the crash and
            # restarts us.
            self._put(error_frame("internal", "internal error", message.id), EventKind.ERROR)
            raise

    async def _handle(self, request: Request) -> None:
        match request:
            case Send():
                self._send(request)
            case Typing(room=room_id):
                # Best effort: a room too busy to take it loses it (logged and counted).
                self._tells.tell(self._joined(room_id), UserTyping(self.user), sender=self.name)
            case Join():
                await self._join(request)
            case Leave(room=room_id):
                self._leave(room_id)
                self._reply(request.id, {"type": EventKind.LEFT, "room": room_id})
            case Ping():
                self._reply(request.id, {"type": EventKind.PONG})
            case Auth(token=token):
                await self._reauth(token, request.id)
            case Cancel():
                await self._cancel(request)

    def _reply(self, re: Any, payload: dict[str, Any]) -> None:
        if re is not None:
            payload["re"] = re
        self._put(frame(payload), payload["type"])

    def _put(self, data: bytes, kind: EventKind) -> None:
        """Queue a frame for the client. A closed queue belongs to a connection that is
        ending; one that overflows with this frame ends it with 4509, as when a room
        overflows it."""
        if not self.outbound.closed and not self.outbound.put(data, kind):
            self._overflowed()

    def _joined(self, room_id: str) -> RoomActor:
        joined = self.joined.get(room_id)
        if joined is None:
            if not is_id(room_id):
                raise NotFound("no such room")  # no room has that id, joined or not
            raise Forbidden("join the room first")
        room = joined.actor
        if not room.is_alive:  # deleted, or passivated after a crash loop
            del self.joined[room_id]
            raise NotFound("the room is gone; join again")
        return room

    def _lose(self, room_ids: Iterable[str]) -> None:
        """Leave rooms the user may no longer enter. Each room answers `left` `removed`
        after the last event it had for this session; from then on the room is as never
        joined (`forbidden`)."""
        for room_id in list(room_ids):
            joined = self.joined.pop(room_id, None)
            if joined is None:
                continue
            room = joined.actor
            try:
                room.tell(Exit(self.session_id, LeftReason.REMOVED))
            except MailboxFull as exc:
                # The room would go on delivering to us: end the connection instead.
                self._tells.failed(room, "Exit", exc, sender=self.name)
                self.close(CloseReason.ROOM_ACCESS_CHANGED)
            except ActorError as exc:  # the room has stopped: nothing more comes from it
                self._tells.failed(room, "Exit", exc, sender=self.name)
                left = {"type": EventKind.LEFT, "room": room_id, "reason": LeftReason.REMOVED}
                self._put(frame(left), EventKind.LEFT)

    def _leave(self, room_id: str) -> None:
        """Stop the room's events for this session. Raises RateLimited when the room is
        too busy to hear it: the session stays joined, and the client retries."""
        joined = self.joined.get(room_id)
        if joined is None:
            return
        room = joined.actor
        try:
            room.tell(Exit(self.session_id))
        except MailboxFull:
            raise RateLimited("the room is busy; retry shortly") from None
        except ActorError as exc:  # the room has stopped: nothing more comes from it
            self._tells.failed(room, "Exit", exc, sender=self.name)
        del self.joined[room_id]

    def _exit(self, room: RoomActor) -> None:
        # Refused: the room is gone, or overloaded; then it keeps this member until an
        # event finds our queue closed or full. Either way the loss is logged and counted.
        self._tells.tell(room, Exit(self.session_id), sender=self.name)

    async def _join(self, request: Join) -> None:
        """Enter the room; `on_joined` hears how long it took from taking the request to the
        room having queued `joined` (and a resuming join's replay)."""
        started = time.perf_counter()
        if not is_id(request.room):
            raise NotFound("no such room")  # without asking the database about it
        access = await self._directory.access(self.user.id, request.room)
        if access is None:
            raise NotFound("no such room")
        if request.room in self.joined:
            self._exit(self.joined.pop(request.room).actor)
        room = self._rooms(request.room)
        member = Member(self.session_id, self.user, self.outbound, self._overflowed)
        try:
            await room.ask(
                lambda reply: Enter(member, request.since, request.id, reply),
                timeout=self._limits.join_timeout,
            )
        except (AskTimeout, ActorCrashed):
            # The room may have let the member in all the same (late, or before the
            # crash): it must not go on delivering to a session that did not join.
            if not self._tells.tell(room, Exit(self.session_id), sender=self.name):
                if room.is_alive:  # too busy to hear it: end the connection instead
                    self.close(CloseReason.ROOM_ACCESS_CHANGED)
            raise
        self.joined[request.room] = JoinedRoom(room, access.room.team_id)
        if self._on_joined is not None:
            self._on_joined(time.perf_counter() - started)

    def _overflowed(self) -> None:
        """A room found the outbound queue full (it closed itself): the connection ends
        with 4509. Once this actor has stopped, the connection has ended already, and a
        room that could not be told `Exit` drops the member here (that loss is counted)."""
        if self.is_alive:
            self.close(CloseReason.SLOW_CONSUMER)

    def _send(self, request: Send) -> None:
        room = self._joined(request.room)
        author = Author.user(self.user.id, self.user.name)
        message = NewMessage(request.room, author, request.body, request.client_id)
        reply: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        try:
            room.tell(Post(message, reply, request.ai, self.session_id, request.id))
        except MailboxFull:
            raise RateLimited("the room is busy; retry shortly") from None
        reply.add_done_callback(lambda done: self._acked(done, request))

    def _acked(self, done: asyncio.Future[Appended], request: Send) -> None:
        # Nobody cancels a send's reply; should it happen, the client still hears of it.
        error = asyncio.CancelledError() if done.cancelled() else done.exception()
        if error is not None:
            if isinstance(error, RoomcastError):  # its message is safe to show, and says why
                code, message = error.code, f"message not stored: {error.message}"
            else:
                code, message = "internal", "message not stored"
            self._put(error_frame(code, message, request.id), EventKind.ERROR)
            return
        appended = done.result()
        ack = {"type": EventKind.ACK, "room": request.room, "seq": appended.message.seq}
        ack["client_id"] = request.client_id
        self._reply(request.id, ack)

    async def _cancel(self, request: Cancel) -> None:
        room = self._joined(request.room)
        # The role held now, not at the join: a promotion or demotion since counts at once.
        access = await self._directory.access_now(self.user.id, request.room)
        if access is None:
            self._lose([request.room])
            raise Forbidden("join the room first")
        may_cancel_any = access.role in ("owner", "admin")
        await room.ask(
            lambda reply: CancelGeneration(request.gen, self.user.id, may_cancel_any, reply),
            timeout=self._limits.join_timeout,
        )
        self._reply(request.id, {"type": EventKind.ACK})

    async def _reauth(self, token: str, re: Any) -> None:
        try:
            verified = await self._verify(token)
        except Unauthorized:
            self.close(CloseReason.INVALID_TOKEN)
            return
        if verified.user.id != self.user.id:
            raise Invalid("token: belongs to another user")
        self.token_expires_at = verified.expires_at
        self.family_id = verified.family_id
        self.ready(re, verified.user)
        await self._recheck_rooms()

    async def _recheck_rooms(self) -> None:
        """Leave the rooms the user may no longer enter. Membership changes reach live
        sessions on the control stream; this bounds what a lost announcement leaves open
        to one token's life, since a connection lives by re-auths."""
        lost = []
        for room_id in list(self.joined):
            if await self._directory.access_now(self.user.id, room_id) is None:
                lost.append(room_id)
        self._lose(lost)

    def ready(self, re: Any, user: UserRef | None = None) -> None:
        """Queue `ready`: one shape after the first auth and after every re-auth."""
        heartbeat = self._limits.heartbeat
        self._reply(
            re,
            {
                "type": EventKind.READY,
                "user": (user or self.user).to_json(),
                "session": self.session_id,
                "heartbeat": int(heartbeat) if heartbeat.is_integer() else heartbeat,
            },
        )
