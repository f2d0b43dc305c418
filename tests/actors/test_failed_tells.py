"""A notice an actor cannot be told is logged, with the actor's name, and counted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from actors.close_reason import CloseReason
from actors.events import EventKind, RoomEvent
from actors.hub import Hub, HubConfig
from actors.outbound import OutboundQueue
from actors.ports import UserRef, Verified
from actors.room import RoomActor
from actors.room_messages import Enter, FillGap, Member
from actors.session import JoinedRoom, SessionActor
from storage.bus import MemoryBus
from storage.cache import Cache
from storage.db import Database
from storage.kv import MemoryKeyValue
from storage.message_store import SqlMessageStore, SqlRoomDirectory
from storage.presence import MemoryPresence
from storage.room_lists import RoomListCache
from tests import seed

Counted = list[tuple[str, str, str]]


class HeldBus(MemoryBus):
    """The in-process bus, whose presence announcements wait for `release`: a member
    entering (a user's first session) holds the room busy."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def publish(self, topic: str, data: bytes) -> str:
        if RoomEvent.unpack(data).kind is EventKind.PRESENCE:
            self.entered.set()
            await self.release.wait()
        return await super().publish(topic, data)


async def never_verify(token: str) -> Verified:
    raise AssertionError("no token is verified here")


def store(database: Database) -> SqlMessageStore:
    return SqlMessageStore(database, RoomListCache(Cache(MemoryKeyValue())))


@pytest.fixture
async def busy_room(
    database: Database,
) -> AsyncIterator[tuple[Hub, RoomActor, HeldBus, Counted]]:
    """A started hub whose one room is held busy with a full mailbox."""
    ada, _, lobby = await seed.user_team_room(database)
    bus = HeldBus()
    counted: Counted = []
    hub = Hub(
        store=store(database),
        directory=SqlRoomDirectory(database),
        bus=bus,
        presence=MemoryPresence(),
        verify=never_verify,
        config=HubConfig(tick_interval=0.01),
        on_tell_failed=lambda *labels: counted.append(labels),
    )
    hub.start()
    room = hub.room(lobby.id)
    member = Member("s1", UserRef(ada.id, ada.name), OutboundQueue())
    joining = asyncio.ensure_future(
        room.ask(lambda reply: Enter(member, None, None, reply), timeout=5)
    )
    await asyncio.wait_for(bus.entered.wait(), 5)
    while room.mailbox_depth < room.mailbox_size:
        room.tell(FillGap())
    yield hub, room, bus, counted
    bus.release.set()
    await joining
    await hub.close()


@pytest.mark.parametrize(
    ("notify", "message"),
    [(Hub.room_changed, "Changed"), (Hub.room_deleted, "Deleted")],
)
async def test_a_notice_a_busy_room_cannot_take_is_logged_and_counted(
    busy_room, caplog, notify: Callable[[Hub, str], None], message: str
) -> None:
    hub, room, _, counted = busy_room
    with caplog.at_level(logging.WARNING, logger="actors.failed_tells"):
        notify(hub, room.room_id)
    assert [labels for labels in counted if labels[1] != "Tick"] == [
        ("room", message, "MailboxFull")
    ]
    assert f"could not tell {room.name} {message}" in caplog.text


async def test_a_tick_a_busy_room_cannot_take_is_logged_and_counted(busy_room, caplog) -> None:
    hub, room, _, counted = busy_room
    with caplog.at_level(logging.WARNING, logger="actors.failed_tells"):
        async with asyncio.timeout(5):
            while not counted:
                await asyncio.sleep(0.01)
    assert counted[0] == ("room", "Tick", "MailboxFull")
    assert f"hub: could not tell {room.name} Tick" in caplog.text


async def test_an_exit_a_stopped_room_cannot_take_is_logged_and_counted(database, caplog) -> None:
    _, _, lobby = await seed.user_team_room(database)
    room = RoomActor(lobby.id, store=store(database), bus=MemoryBus(), presence=MemoryPresence())
    await room.stop()  # never started: stopped at once
    counted: Counted = []
    hub = Hub(
        store=store(database),
        directory=SqlRoomDirectory(database),
        bus=MemoryBus(),
        presence=MemoryPresence(),
        verify=never_verify,
        on_tell_failed=lambda *labels: counted.append(labels),
    )
    hub.start()
    closed: list[CloseReason] = []
    session: SessionActor = hub.open_session(
        Verified(UserRef("u1", "User 1"), expires_at=1e12, family_id="f1"),
        closed.append,
        OutboundQueue(),
    )
    session.joined[lobby.id] = JoinedRoom(room, lobby.team_id)
    with caplog.at_level(logging.WARNING, logger="actors.failed_tells"):
        await hub.close_session(session)  # the session's on_stop tells its rooms Exit
    await hub.close()
    assert counted == [("room", "Exit", "ActorStopped")]
    assert f"{session.name}: could not tell {room.name} Exit" in caplog.text
