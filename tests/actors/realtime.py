"""A hub on real storage for session and hub tests: its rooms store in the test database.

The parts a test watches are real ones too: an outbound queue that remembers what it
accepted, a bus whose presence announcements can hold a room busy, the failed-tells counter.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from actors.close_reason import CloseReason
from actors.events import EventKind, RoomEvent
from actors.hub import Hub, HubConfig
from actors.outbound import OutboundQueue
from actors.ports import UserRef, Verified
from actors.requests import Join, Request
from actors.room import RoomActor
from actors.room_messages import Enter, FillGap, Member
from actors.session import SessionActor, SessionLimits
from errors import Unauthorized
from storage.bus import MemoryBus
from storage.cache import Cache
from storage.db import Database
from storage.kv import MemoryKeyValue
from storage.message_store import SqlMessageStore, SqlRoomDirectory
from storage.presence import MemoryPresence
from storage.room_lists import RoomListCache
from storage.rooms import RoomRecord
from storage.users import UserRecord
from tests import seed

WAIT = 5.0  # seconds a test waits for what must happen; no test relies on it being short


class Frames(OutboundQueue):
    """An outbound queue that also keeps, decoded, every frame it accepted."""

    def __init__(self, *, hard_limit: int = 1024 * 1024) -> None:
        super().__init__(hard_limit=hard_limit)
        self.seen: list[dict[str, Any]] = []
        self._in_batch = False

    def put(self, frame: bytes, kind: str = "", gen: str | None = None) -> bool:
        accepted = super().put(frame, kind, gen)
        if accepted and not self._in_batch:
            self.seen.append(orjson.loads(frame))
        return accepted

    def put_events(self, events: Sequence[RoomEvent]) -> bool:
        self._in_batch = True  # whether or not the base class goes through `put`
        try:
            accepted = super().put_events(events)
        finally:
            self._in_batch = False
        if accepted:
            self.seen.extend(orjson.loads(event.frame) for event in events)
        return accepted

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.seen if f["type"] == kind]

    async def wait_for(self, kind: str, **fields: Any) -> dict[str, Any]:
        """The first accepted frame of `kind` with these `fields`, waiting for it."""
        async with asyncio.timeout(WAIT):
            while True:
                for found in self.of_type(kind):
                    if all(found.get(k) == v for k, v in fields.items()):
                        return found
                await asyncio.sleep(0.005)


class GatedBus(MemoryBus):
    """The in-process bus, whose presence announcements can be held: a member entering
    (a user's first session in the room) then holds its room busy."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    def hold(self) -> None:
        self.gate = asyncio.Event()
        self.entered.clear()

    def release(self) -> None:
        if self.gate is not None:
            self.gate.set()
        self.gate = None

    async def publish(self, topic: str, data: bytes) -> str:
        gate = self.gate
        if gate is not None and RoomEvent.unpack(data).kind is EventKind.PRESENCE:
            self.entered.set()
            await gate.wait()
        return await super().publish(topic, data)


async def eventually(check: Callable[[], bool]) -> None:
    """Wait until `check()` holds (a room or session works on its own task)."""
    async with asyncio.timeout(WAIT):
        while not check():
            await asyncio.sleep(0.005)


async def eventually_present(
    presence: MemoryPresence, room_id: str, user_id: str, *, present: bool = True
) -> None:
    """Wait until the shared presence has (or, `present=False`, no longer has) `user_id`:
    a room writes it on a task of its own."""
    async with asyncio.timeout(WAIT):
        while (user_id in await presence.members(room_id)) != present:
            await asyncio.sleep(0.005)


@dataclass
class Realtime:
    """A started hub with one team room, its owner Ada, and what the hub reported."""

    hub: Hub
    bus: GatedBus
    presence: MemoryPresence
    database: Database
    ada: UserRecord
    lobby: RoomRecord
    counted: list[tuple[str, str, str]]  # (actor kind, message, error) of each failed tell
    on_crash: list[Callable[[str, Exception], None]]  # called with each crash reported
    tokens: dict[str, Verified | Exception]  # what `verify` accepts, or raises

    def open(self, user: UserRecord | None = None, *, hard_limit: int = 1024 * 1024) -> Session:
        """A session of `user` (Ada by default), as the websocket layer opens one."""
        who = user or self.ada
        outbound = Frames(hard_limit=hard_limit)
        closes: list[CloseReason] = []
        verified = Verified(UserRef(who.id, who.name), expires_at=1e12, family_id="f1")
        actor = self.hub.open_session(verified, closes.append, outbound)
        return Session(actor, outbound, closes)

    async def watcher(self, room_id: str) -> Frames:
        """Let an observer (another user's member, not a session) into `room_id`."""
        frames = Frames()
        member = Member("watcher", UserRef("u-watcher", "Watcher"), frames)
        room = self.hub.room(room_id)
        await room.ask(lambda reply: Enter(member, None, None, reply), timeout=WAIT)
        return frames


@dataclass
class Session:
    """A session actor with the queue it writes to and the closes it asked for."""

    actor: SessionActor
    outbound: Frames
    closes: list[CloseReason]

    async def request(self, request: Request, reply: str) -> dict[str, Any]:
        """Tell the session `request` (its `id` set) and wait for the frame answering it."""
        self.actor.tell(request)
        async with asyncio.timeout(WAIT):
            while True:
                for found in self.outbound.seen:
                    if found.get("re") == request.id and found["type"] in (reply, "error"):
                        return found
                await asyncio.sleep(0.005)

    async def join(self, room_id: str) -> dict[str, Any]:
        joined = await self.request(Join(room_id, id=f"join-{room_id}"), "joined")
        assert joined["type"] == "joined", joined
        return joined


def make_store(database: Database) -> SqlMessageStore:
    return SqlMessageStore(database, RoomListCache(Cache(MemoryKeyValue())))


@asynccontextmanager
async def started_hub(
    database: Database, *, join_timeout: float = WAIT, tick_interval: float = 3600
) -> AsyncIterator[Realtime]:
    """A started hub on the test database, closed on the way out; every tell it could
    not make is counted."""
    ada, _, lobby = await seed.user_team_room(database)
    bus, presence = GatedBus(), MemoryPresence()
    tokens: dict[str, Verified | Exception] = {}
    counted: list[tuple[str, str, str]] = []
    on_crash: list[Callable[[str, Exception], None]] = []

    async def verify(token: str) -> Verified:
        verified = tokens.get(token, Unauthorized("invalid token"))
        if isinstance(verified, Exception):
            raise verified
        return verified

    def crashed(name: str, exc: Exception) -> None:
        for hook in on_crash:
            hook(name, exc)

    hub = Hub(
        store=make_store(database),
        directory=SqlRoomDirectory(database),
        bus=bus,
        presence=presence,
        verify=verify,
        # No tick unless asked for.
        config=HubConfig(
            tick_interval=tick_interval,
            session_limits=SessionLimits(join_timeout=join_timeout, leave_timeout=WAIT),
        ),
        on_crash=crashed,
        on_tell_failed=lambda *labels: counted.append(labels),
    )
    hub.start()
    try:
        yield Realtime(hub, bus, presence, database, ada, lobby, counted, on_crash, tokens)
    finally:
        bus.release()
        await hub.close()


async def hold_busy(realtime: Realtime, room: RoomActor) -> asyncio.Future[int]:
    """Hold `room` busy letting a member in (release with `realtime.bus.release()`);
    returns that member's entry, answered once released."""
    realtime.bus.hold()
    late = Member("late", UserRef("u-late", "Late"), OutboundQueue())
    entering = asyncio.ensure_future(
        room.ask(lambda reply: Enter(late, None, None, reply), timeout=WAIT)
    )
    await asyncio.wait_for(realtime.bus.entered.wait(), WAIT)
    return entering


async def hold_full(realtime: Realtime, room: RoomActor) -> asyncio.Future[int]:
    """Hold `room` busy (as `hold_busy`) with a full mailbox."""
    entering = await hold_busy(realtime, room)
    while room.mailbox_depth < room.mailbox_size:
        room.tell(FillGap())  # nothing held back: handled at once when released
    return entering
