"""The room hands each member the events of a commit together, in order, once per batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import orjson
import pytest

from actors.events import RoomEvent
from actors.outbound import OutboundQueue
from actors.ports import UserRef
from actors.room import RoomActor
from actors.room_messages import Enter, FromBus, Member, Post
from storage.bus import MemoryBus
from storage.cache import Cache
from storage.db import Database
from storage.kv import MemoryKeyValue
from storage.message_store import SqlMessageStore
from storage.messages import Appended, Author, NewMessage
from storage.presence import MemoryPresence
from storage.room_lists import RoomListCache
from tests import seed


class Recording(OutboundQueue):
    """An outbound queue that keeps each hand-over as one list of (kind, seq) pairs."""

    def __init__(self) -> None:
        super().__init__()
        self.handovers: list[list[tuple[str, int | None]]] = []

    def put(self, frame: bytes, kind: str = "", gen: str | None = None) -> bool:
        self.handovers.append([(kind, orjson.loads(frame).get("seq"))])
        return True

    def put_events(self, events: Sequence[RoomEvent]) -> bool:
        self.handovers.append([(event.kind, event.seq) for event in events])
        return True


@pytest.fixture
async def lobby(database: Database) -> AsyncIterator[tuple[RoomActor, list[Member]]]:
    """A started room with three members, each on a recording queue."""
    ada, _, record = await seed.user_team_room(database)
    store = SqlMessageStore(database, RoomListCache(Cache(MemoryKeyValue())))
    room = RoomActor(record.id, store=store, bus=MemoryBus(), presence=MemoryPresence())
    room.start()
    users = [UserRef(ada.id, ada.name), UserRef("u1", "User 1"), UserRef("u2", "User 2")]
    members = [Member(f"s{i}", user, Recording()) for i, user in enumerate(users)]
    for member in members:
        await room.ask(lambda reply, m=member: Enter(m, None, None, reply), timeout=5)
    for member in members:
        member.outbound.handovers.clear()  # type: ignore[attr-defined]
    yield room, members
    await room.stop()


def handovers(member: Member) -> list[list[tuple[str, int | None]]]:
    assert isinstance(member.outbound, Recording)
    return member.outbound.handovers


async def test_the_messages_of_one_commit_reach_each_member_in_one_handover(lobby, database):
    room, members = lobby
    author = Author.user(members[0].user.id, members[0].user.name)
    replies: list[asyncio.Future[Appended]] = []
    for n in range(3):  # told together: committed as one batch
        reply: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        room.tell(Post(NewMessage(room.room_id, author, f"m{n}"), reply))
        replies.append(reply)
    acked = await asyncio.gather(*replies)
    assert [a.message.seq for a in acked] == [1, 2, 3]
    async with asyncio.timeout(5):
        while not all(handovers(member) for member in members):
            await asyncio.sleep(0.01)
    for member in members:
        assert handovers(member) == [[("message", 1), ("message", 2), ("message", 3)]]


async def test_a_single_event_is_handed_over_alone(lobby):
    room, members = lobby
    event = {"type": "message", "room": room.room_id, "seq": 1, "body": "x"}
    room.tell(FromBus(RoomEvent.of(event)))
    async with asyncio.timeout(5):
        while not all(handovers(member) for member in members):
            await asyncio.sleep(0.01)
    for member in members:
        assert handovers(member) == [[("message", 1)]]


async def test_a_batch_leaves_out_the_typists_own_typing_event(lobby):
    room, members = lobby
    typist = members[1].user
    typing = {"type": "typing", "room": room.room_id, "user": typist.to_json()}
    message = {"type": "message", "room": room.room_id, "seq": 1, "body": "x"}
    room.tell(FromBus(RoomEvent.of(typing, origin=typist.id)))
    room.tell(FromBus(RoomEvent.of(message)))
    async with asyncio.timeout(5):
        while not all(handovers(member) for member in members):
            await asyncio.sleep(0.01)
    assert handovers(members[0]) == [[("typing", None), ("message", 1)]]
    assert handovers(members[1]) == [[("message", 1)]]
    assert handovers(members[2]) == [[("typing", None), ("message", 1)]]


async def test_events_collected_are_handed_over_before_a_newcomer_is_let_in(lobby):
    """A member entering right after a batch must not receive events its `joined` covers."""
    room, members = lobby
    newcomer = Member("s-new", UserRef("u-new", "New"), Recording())
    for seq in (1, 2):
        event = {"type": "message", "room": room.room_id, "seq": seq, "body": "x"}
        room.tell(FromBus(RoomEvent.of(event)))
    joined_seq = await room.ask(lambda reply: Enter(newcomer, None, None, reply), timeout=5)
    assert joined_seq == 2
    assert handovers(members[0])[0] == [("message", 1), ("message", 2)]
    assert [kinds for kinds in handovers(newcomer) if ("message", 1) in kinds] == []
