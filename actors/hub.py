"""The realtime hub of one instance: the room registry, the live sessions, the actor tree."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from actors.actor import ActorSnapshot
from actors.close_reason import Closer, CloseReason
from actors.failed_tells import CountFailedTell, FailedTells
from actors.group_commit import GroupCommit
from actors.outbound import OutboundQueue
from actors.ports import MessageStore, RoomDirectory, Verified
from actors.registry import Registry
from actors.room import RoomActor
from actors.room_messages import AssistantDeps, Changed, Deleted, FaultHook, Tick
from actors.session import JoinObserver, SessionActor, SessionLimits, TeamLeft, Verifier
from actors.supervisor import RestartPolicy, Supervisor
from storage.bus import Bus
from storage.presence import Presence
from storage.rooms import RoomRecord

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HubConfig:
    room_idle_after: float = 60.0
    sweep_interval: float = 5.0
    tick_interval: float = 2.0  # presence refresh and generation heartbeats
    interrupt_after: float = 6.0  # a generation silent this long is declared interrupted
    session_limits: SessionLimits = SessionLimits()


class Hub:
    """Spawns rooms on first use, tracks sessions by user, closes what must be closed."""

    def __init__(
        self,
        *,
        store: MessageStore,
        directory: RoomDirectory,
        bus: Bus,
        presence: Presence,
        verify: Verifier,
        config: HubConfig = HubConfig(),
        fault: FaultHook | None = None,
        assistant: AssistantDeps | None = None,
        bus_ready: Callable[[], bool] = lambda: True,
        on_crash: Callable[[str, Exception], None] | None = None,
        on_tell_failed: CountFailedTell | None = None,
        on_joined: JoinObserver | None = None,
    ) -> None:
        self._store = GroupCommit(store)
        self._directory = directory
        self._bus = bus
        self._verify = verify
        self._config = config
        self._fault = fault
        self._assistant = assistant
        self._presence = presence
        self._bus_ready = bus_ready
        self._tells = FailedTells(on_tell_failed)
        self._on_joined = on_joined  # every session's joins are timed through it
        policy = RestartPolicy(max_restarts=5, within=10.0)
        self.rooms: Registry[str, RoomActor] = Registry(
            self._make_room,
            supervisor=Supervisor("rooms", policy=policy, on_crash=on_crash),
            idle_after=config.room_idle_after,
            sweep_interval=config.sweep_interval,
        )
        self.sessions = Supervisor("sessions", policy=policy, on_crash=on_crash)
        # Lists, not sets: a user has a session or two, and an empty set is 216 bytes.
        self._by_user: dict[str, list[SessionActor]] = {}
        self._deletions_due: set[str] = set()  # rooms deleted while their mailbox was full
        self._expiry: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None

    def _make_room(self, room_id: str) -> RoomActor:
        return RoomActor(
            room_id,
            store=self._store,
            bus=self._bus,
            fault=self._fault,
            assistant=self._assistant,
            presence=self._presence,
            bus_ready=self._bus_ready,
            interrupt_after=self._config.interrupt_after,
        )

    def room(self, room_id: str) -> RoomActor:
        """The live actor of `room_id`, spawned on first use."""
        return self.rooms.get_or_spawn(room_id)

    def start(self) -> None:
        """Start the supervisors, the token-expiry sweep and the rooms' tick."""
        self.rooms.start()
        self.sessions.start()
        self._expiry = asyncio.create_task(self._close_expired_sessions(), name="hub token expiry")
        self._ticker = asyncio.create_task(self._tick_rooms(), name="hub tick")

    def open_session(
        self,
        verified: Verified,
        close: Closer,
        outbound: OutboundQueue,
    ) -> SessionActor:
        """Make and start the actor of a new authenticated connection; its frames go to
        `outbound`, which the websocket layer owns (it sizes it and drains it)."""
        user = verified.user
        session = SessionActor(
            uuid.uuid4().hex,
            user,
            verified.expires_at,
            family_id=verified.family_id,
            rooms=self.room,
            directory=self._directory,
            verify=self._verify,
            outbound=outbound,
            close=close,
            limits=self._config.session_limits,
            tells=self._tells,
            on_joined=self._on_joined,
        )
        self.sessions.add(session)
        self._by_user.setdefault(user.id, []).append(session)
        return session

    async def close_session(self, session: SessionActor) -> None:
        """End the session of a connection that has ended.

        The session leaves its rooms first, each room confirming it let the member go
        (and announced the user offline where this was their last session). Only then is
        its outbound queue closed: a room that still counted the member would find the
        queue closed and drop it as a slow consumer.
        """
        self._forget(session)
        await session.stop(drain=False)  # its on_stop leaves the rooms
        await session.leave_rooms()  # those still joined when a crash skipped on_stop
        session.outbound.close()

    def _forget(self, session: SessionActor) -> None:
        sessions = self._by_user.get(session.user.id)
        if sessions is not None and session in sessions:
            sessions.remove(session)
            if not sessions:
                del self._by_user[session.user.id]

    def sessions_of(self, user_id: str) -> list[SessionActor]:
        """The live sessions of `user_id` on this instance."""
        return list(self._by_user.get(user_id, ()))

    def revoke_user(self, user_id: str) -> int:
        """Close every websocket of `user_id` (tokens revoked); returns how many were open."""
        sessions = self.sessions_of(user_id)
        for session in sessions:
            session.close(CloseReason.TOKENS_REVOKED)
        return len(sessions)

    def revoke_sign_in(self, user_id: str, family_id: str) -> int:
        """Close every websocket of `user_id` living by a token of the sign-in `family_id`
        (sign-in revoked); returns how many were open."""
        sessions = [s for s in self.sessions_of(user_id) if s.family_id == family_id]
        for session in sessions:
            session.close(CloseReason.SIGN_IN_REVOKED)
        return len(sessions)

    def member_removed(self, team_id: str, user_id: str) -> None:
        """`user_id` is no longer in the team: their sessions here leave its rooms."""
        self._directory.forget_member(team_id, user_id)
        for session in self.sessions_of(user_id):
            if not self._tells.tell(session, TeamLeft(team_id), sender="hub"):
                # Full, or dead after crashing: its rooms would go on delivering the
                # team's events to it, so the connection ends instead.
                session.close(CloseReason.ROOM_ACCESS_CHANGED)

    def member_changed(self, team_id: str, user_id: str) -> None:
        """`user_id`'s role in the team changed: joins ask the database again."""
        self._directory.forget_member(team_id, user_id)

    def room_changed(self, room_id: str) -> None:
        """The room's settings changed: its live actor reloads them."""
        self._directory.forget_room(room_id)
        room = self.rooms.get(room_id)
        if room is not None:
            self._tells.tell(room, Changed(), sender="hub")

    def room_deleted(self, room_id: str) -> None:
        """The room is gone: its live actor tells its members and stops."""
        self._directory.forget_room(room_id)
        room = self.rooms.get(room_id)
        if room is not None and not self._tells.tell(room, Deleted(), sender="hub"):
            if room.is_alive:  # overloaded: nothing else would ever tell it again
                self._deletions_due.add(room_id)

    def _retry_deletions(self) -> None:
        """Tell `Deleted` again to the rooms that were too busy to take it."""
        for room_id in list(self._deletions_due):
            self._deletions_due.discard(room_id)
            self.room_deleted(room_id)

    async def _tick_rooms(self) -> None:
        """Tell every live room `Tick` (and `Deleted` again where it was refused), every
        `tick_interval` seconds."""
        while True:
            await asyncio.sleep(self._config.tick_interval)
            self._retry_deletions()
            rooms = list(self.rooms.live())
            read_at = asyncio.get_running_loop().time()
            settings = await self._settings_of([room.room_id for room in rooms])
            for room in rooms:
                tick = Tick(settings.get(room.room_id), read_at)
                self._tells.tell(room, tick, sender="hub")

    async def _settings_of(self, room_ids: list[str]) -> dict[str, RoomRecord]:
        """The live rooms' records in one read, for their tick; none if it fails or takes
        longer than a tick (the rooms then skip what needs them: a tick waits at most that)."""
        if not room_ids:
            return {}
        try:
            async with asyncio.timeout(self._config.tick_interval):
                return await self._store.rooms(room_ids)
        except Exception as exc:  # noqa: BLE001 - reads fail untyped (driver errors); next tick
            logger.warning("tick: reading %d rooms failed: %r", len(room_ids), exc)
            return {}

    def close_all(self, reason: CloseReason) -> None:
        """Ask every live connection to close, for `reason` (at shutdown)."""
        for sessions in list(self._by_user.values()):
            for session in list(sessions):
                session.close(reason)

    async def _close_expired_sessions(self) -> None:
        """Every second, close the connections whose token expired past the grace."""
        while True:
            await asyncio.sleep(1.0)
            now = time.time()
            for sessions in list(self._by_user.values()):
                for session in list(sessions):
                    if session.expired(now):
                        session.close(CloseReason.TOKEN_EXPIRED)

    def snapshot(self) -> list[ActorSnapshot]:
        """The admin view of the actor tree: the rooms' and the sessions' supervisors."""
        return [self.rooms.snapshot(), self.sessions.snapshot()]

    async def close(self) -> None:
        """Stop the periodic tasks, then the sessions (they leave their rooms), then rooms."""
        tasks = {task for task in (self._expiry, self._ticker) if task is not None}
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)  # never raises their cancellation, only ours
        await self.sessions.stop(drain=False)
        await self.rooms.close()
