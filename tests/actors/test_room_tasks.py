"""What a room does on its own task: it orders events and fills gaps, lets go of members
whose queue overflows, answers commits and hands its assistant's refusals to the sender.

Real storage throughout; a room's own timers and tasks must reach it even when its
mailbox is full.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson
import pytest

from actors.assistant import AssistantConfig
from actors.errors import MailboxFull
from actors.events import EventKind, RoomEvent
from actors.outbound import OutboundQueue
from actors.ports import UserRef
from actors.room import RoomActor
from actors.room_messages import AssistantDeps, Enter, FromBus, Member, Post, RoomMessage
from server.billing.quotas import Quotas
from server.config import PlanLimits
from server.llm.offline import OfflineLLM
from storage.bus import MemoryBus
from storage.cache import Cache
from storage.db import Database
from storage.kv import MemoryKeyValue
from storage.message_store import SqlMessageStore
from storage.messages import Appended, Author, NewMessage
from storage.presence import MemoryPresence
from storage.room_lists import RoomListCache
from storage.rooms import RoomRecord
from tests import seed


class HeldBus(MemoryBus):
    """The in-process bus, whose next presence announcement (a member entering) can keep
    the room waiting, so that a test can fill the room's mailbox while the room is busy."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self._release: asyncio.Event | None = None

    def hold(self) -> None:
        self.entered.clear()
        self._release = asyncio.Event()

    def release(self) -> None:
        if self._release is not None:
            self._release.set()
            self._release = None

    async def publish(self, topic: str, data: bytes) -> str:
        release = self._release
        if release is not None and RoomEvent.unpack(data).kind is EventKind.PRESENCE:
            self.entered.set()
            await release.wait()
        return await super().publish(topic, data)


class Collected(OutboundQueue):
    """A real outbound queue that also keeps, decoded, every frame it was handed."""

    def __init__(self, **limits: int) -> None:
        super().__init__(**limits)
        self.frames: list[dict[str, Any]] = []

    def put(self, frame: bytes, kind: str = "", gen: str | None = None) -> bool:
        self.frames.append(orjson.loads(frame))
        return super().put(frame, kind, gen)

    def put_events(self, events: Sequence[RoomEvent]) -> bool:
        self.frames.extend(orjson.loads(event.frame) for event in events)
        return super().put_events(events)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [frame for frame in self.frames if frame["type"] == kind]

    def seqs(self) -> list[int]:
        return [frame["seq"] for frame in self.of_type(EventKind.MESSAGE)]


class Gated(SqlMessageStore):
    """The real store, whose next `append_many` waits until the test opens the gate."""

    def __init__(self, database: Database) -> None:
        super().__init__(database, RoomListCache(Cache(MemoryKeyValue())))
        self.gate: asyncio.Event | None = None
        self.waiting = asyncio.Event()

    async def append_many(self, batch: Sequence[NewMessage]) -> list[Appended]:
        gate = self.gate
        if gate is not None:
            self.waiting.set()
            await gate.wait()
        return await super().append_many(batch)


@dataclass
class Lobby:
    room: RoomActor
    record: RoomRecord
    store: Gated
    presence: MemoryPresence
    bus: HeldBus
    author: Author

    def post(self, body: str, **fields: Any) -> tuple[Post, asyncio.Future[Appended]]:
        reply: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        message = NewMessage(self.record.id, self.author, body, client_id=body)
        return Post(message, reply, **fields), reply

    async def enter(self, session_id: str, user: UserRef, outbound: OutboundQueue) -> Member:
        member = Member(session_id, user, outbound)
        await self.room.ask(lambda reply: Enter(member, None, None, reply), timeout=5)
        return member

    def fill_mailbox(self) -> None:
        """Tell the room typing events until its mailbox refuses more."""
        with pytest.raises(MailboxFull):  # noqa: PT012 - filling is the point
            for n in range(self.room.mailbox_size + 1):
                self.room.tell(typing(self.record.id, f"u-{n}"))


def message(room_id: str, seq: int, body: str = "x") -> FromBus:
    return FromBus(RoomEvent.of({"type": "message", "room": room_id, "seq": seq, "body": body}))


def typing(room_id: str, user_id: str) -> FromBus:
    payload = {"type": "typing", "room": room_id, "user": {"id": user_id, "name": user_id}}
    return FromBus(RoomEvent.of(payload, origin=user_id))


async def present(
    presence: MemoryPresence, room_id: str, user_id: str, *, present: bool = True
) -> None:
    """Wait until the shared presence has (or no longer has) `user_id`: the room writes it
    on a task of its own. The suite's per-test timeout bounds it."""
    while (user_id in await presence.members(room_id)) != present:
        await asyncio.sleep(0.005)


async def eventually(condition: Any) -> None:
    """Wait until `condition()` holds; the suite's per-test timeout bounds it."""
    while not condition():
        await asyncio.sleep(0.005)


@pytest.fixture
async def make_lobby(database: Database) -> AsyncIterator[Any]:
    """Start a room on real storage with the given RoomActor keywords; stopped afterwards."""
    rooms: list[RoomActor] = []
    quotas: list[Quotas] = []

    async def make(**options: Any) -> Lobby:
        ada, _, record = await seed.user_team_room(database)
        store, presence, bus = Gated(database), MemoryPresence(), HeldBus()
        room = RoomActor(record.id, store=store, bus=bus, presence=presence, **options)
        room.start()
        rooms.append(room)
        assistant = options.get("assistant")
        if assistant is not None and isinstance(assistant.quotas, Quotas):
            quotas.append(assistant.quotas)  # closed too: their lookups run in a task
        return Lobby(room, record, store, presence, bus, Author.user(ada.id, ada.name))

    yield make
    for room in rooms:
        await room.stop()
    for each in quotas:
        await each.close()


# Order and gaps.


async def test_events_arriving_out_of_order_are_held_and_handed_over_in_order(make_lobby):
    lobby = await make_lobby()
    watcher = Collected()
    await lobby.enter("s1", UserRef("u1", "One"), watcher)
    for seq in (3, 2, 1):
        lobby.room.tell(message(lobby.record.id, seq))
    await eventually(lambda: len(watcher.seqs()) == 3)
    assert watcher.seqs() == [1, 2, 3]


async def test_a_gap_the_bus_never_closes_is_filled_from_the_database(make_lobby):
    lobby = await make_lobby(gap_hold=0.01)
    watcher = Collected()
    await lobby.enter("s1", UserRef("u1", "One"), watcher)
    # Stored, but never published: only the third one comes on the bus.
    stored = await lobby.store.append_many(
        [NewMessage(lobby.record.id, lobby.author, f"m{n}") for n in (1, 2, 3)]
    )
    third = stored[2].message.to_event()
    lobby.room.tell(FromBus(RoomEvent.of(third)))
    await eventually(lambda: len(watcher.seqs()) == 3)
    assert watcher.seqs() == [1, 2, 3]
    assert [frame["body"] for frame in watcher.of_type("message")] == ["m1", "m2", "m3"]


async def test_a_gap_fill_due_while_the_mailbox_is_full_is_not_lost(make_lobby):
    # The gap is held long enough for the test to fill the mailbox first.
    lobby = await make_lobby(gap_hold=0.5, mailbox_size=8)
    watcher = Collected()
    await lobby.enter("s1", UserRef("u1", "One"), watcher)
    await lobby.store.append_many(
        [NewMessage(lobby.record.id, lobby.author, f"m{n}") for n in (1, 2)]
    )
    lobby.bus.hold()
    lobby.room.tell(message(lobby.record.id, 3))  # held: 1 and 2 never come on the bus
    entering = asyncio.ensure_future(lobby.enter("s2", UserRef("u2", "Two"), Collected()))
    await lobby.bus.entered.wait()  # the room is busy letting s2 in
    lobby.fill_mailbox()
    await eventually(lambda: lobby.room._gap_timer is None)  # it has fired
    # Its FillGap went into the full mailbox all the same.
    assert lobby.room.mailbox_depth == lobby.room.mailbox_size + 1
    lobby.bus.release()
    await entering
    await eventually(lambda: len(watcher.seqs()) == 3)
    assert watcher.seqs() == [1, 2, 3]


# Members who cannot keep up.


async def test_a_member_let_go_for_overflow_is_announced_offline(make_lobby):
    lobby = await make_lobby()
    watcher = Collected()
    await lobby.enter("s1", UserRef("u1", "One"), watcher)
    slow_user = UserRef("u-slow", "Slow")
    overflowed: list[str] = []
    queue = Collected(hard_limit=1000)
    slow = Member("s-slow", slow_user, queue, lambda: overflowed.append("s"))
    await lobby.room.ask(lambda reply: Enter(slow, None, None, reply), timeout=5)
    await present(lobby.presence, lobby.record.id, slow_user.id)

    lobby.room.tell(message(lobby.record.id, 1, body="y" * 2000))  # past the slow one's limit
    await eventually(lambda: any(p["state"] == "offline" for p in watcher.of_type("presence")))

    offline = watcher.of_type("presence")[-1]
    assert offline["user"] == {"id": slow_user.id, "name": slow_user.name}
    assert overflowed == ["s"]
    assert slow.session_id not in lobby.room.members
    await present(lobby.presence, lobby.record.id, slow_user.id, present=False)


async def test_a_user_with_another_session_left_is_not_announced_offline(make_lobby):
    lobby = await make_lobby()
    watcher = Collected()
    await lobby.enter("s1", UserRef("u1", "One"), watcher)
    both = UserRef("u-two", "Two Tabs")
    await lobby.enter("s-fast", both, Collected())
    slow = Member("s-slow", both, Collected(hard_limit=1000))
    await lobby.room.ask(lambda reply: Enter(slow, None, None, reply), timeout=5)

    lobby.room.tell(message(lobby.record.id, 1, body="y" * 2000))
    lobby.room.tell(message(lobby.record.id, 2))
    await eventually(lambda: watcher.seqs() == [1, 2])

    assert "s-slow" not in lobby.room.members and "s-fast" in lobby.room.members
    states = [(p["user"]["id"], p["state"]) for p in watcher.of_type("presence")]
    assert (both.id, "online") in states and (both.id, "offline") not in states


# Commits and the assistant's answers.


async def test_acks_come_from_the_room_after_the_commit_even_past_a_full_mailbox(make_lobby):
    lobby = await make_lobby(mailbox_size=8)
    post, reply = lobby.post("hello")
    lobby.store.gate = gate = asyncio.Event()
    lobby.room.tell(post)
    await lobby.store.waiting.wait()  # being committed
    lobby.bus.hold()
    entering = asyncio.ensure_future(lobby.enter("s2", UserRef("u2", "Two"), Collected()))
    await lobby.bus.entered.wait()  # the room is busy
    lobby.fill_mailbox()
    gate.set()
    # The commit's outcome goes into the full mailbox; the room has not answered it yet.
    await eventually(lambda: lobby.room.mailbox_depth == lobby.room.mailbox_size + 1)
    assert not reply.done()
    lobby.bus.release()
    await entering
    appended = await asyncio.wait_for(reply, 5)
    assert appended.message.seq == 1
    assert appended.message.body == "hello"


async def test_a_commit_that_ends_while_the_room_stops_is_still_acked(make_lobby):
    lobby = await make_lobby()
    post, reply = lobby.post("hello")
    lobby.store.gate = gate = asyncio.Event()
    lobby.room.tell(post)
    await lobby.store.waiting.wait()  # being committed
    stopping = asyncio.ensure_future(lobby.room.stop())
    await eventually(lambda: not lobby.room.is_alive)  # it takes no more messages
    gate.set()
    await stopping
    appended = await asyncio.wait_for(reply, 5)  # stored, so acked, by the committer itself
    assert appended.message.seq == 1


async def test_a_refused_store_is_still_refused_with_its_error(make_lobby):
    lobby = await make_lobby()
    post, reply = lobby.post("hello")
    bad = replace(post, message=replace(post.message, reply_to=2**63))  # past bigint
    lobby.room.tell(bad)
    [outcome] = await asyncio.gather(reply, return_exceptions=True)
    assert type(outcome).__name__ == "Invalid"


def refusing_assistant(database: Database, **config: int) -> AssistantDeps:
    """The offline model, and a daily allowance of none for users without a paid plan."""
    limits = replace(PlanLimits(), basic_daily_ai_prompts=0)
    return AssistantDeps(
        OfflineLLM(0.0),
        Quotas(MemoryKeyValue(), database, limits),
        AssistantConfig(**config),
    )


@pytest.mark.parametrize(
    ("config", "code"),
    [({"queue_size": 0}, "rate_limited"), ({}, "quota_exceeded")],
    ids=["queue full", "quota used up"],
)
async def test_the_assistants_refusal_reaches_the_senders_session_only(
    make_lobby, database, config, code
):
    lobby = await make_lobby(assistant=refusing_assistant(database, **config))
    sender, other = Collected(), Collected()
    await lobby.enter("s-sender", UserRef(lobby.author.id or "", "Ada"), sender)
    await lobby.enter("s-other", UserRef("u2", "Two"), other)
    post, reply = lobby.post("answer me", ai=True, session_id="s-sender", re="r1")
    lobby.room.tell(post)
    appended = await asyncio.wait_for(reply, 5)  # stored and acked all the same
    await eventually(lambda: sender.of_type("error"))
    [error] = sender.of_type("error")
    assert error["code"] == code and error["re"] == "r1"
    assert (error["room"], error["seq"]) == (lobby.room.room_id, appended.message.seq)
    await eventually(lambda: other.seqs() == [appended.message.seq])
    assert other.of_type("error") == []
    assert not lobby.room.assistant.busy


async def test_the_refusal_of_a_sender_who_left_goes_nowhere(make_lobby, database):
    lobby = await make_lobby(assistant=refusing_assistant(database, queue_size=0))
    post, reply = lobby.post("answer me", ai=True, session_id="s-gone", re="r1")
    lobby.room.tell(post)
    appended = await asyncio.wait_for(reply, 5)
    assert appended.message.seq == 1


async def test_a_full_delta_for_a_late_joiner_is_never_merged_with_the_next_deltas(make_lobby):
    lobby = await make_lobby()
    room_id, gen = lobby.record.id, "g1"

    def ai(kind: str, **fields: Any) -> RoomMessage:
        return FromBus(RoomEvent.of({"type": kind, "room": room_id, "gen": gen, **fields}))

    lobby.room.tell(ai("ai.start", reply_to=1, model="m"))
    lobby.room.tell(ai("ai.delta", i=0, text="Hel"))
    late = OutboundQueue(soft_limit=0)  # merges every delta it can
    await lobby.enter("s-late", UserRef("u2", "Late"), late)
    lobby.room.tell(ai("ai.delta", i=1, text="lo"))
    lobby.room.tell(ai("ai.delta", i=2, text="!"))
    await lobby.enter("s-next", UserRef("u3", "Next"), Collected())  # the deltas went first
    frames = [orjson.loads(frame) for frame in await late.take()]
    answer = [(f["type"], f.get("i"), f.get("text"), f.get("full")) for f in frames]
    assert [part for part in answer if part[0].startswith("ai.")] == [
        ("ai.start", None, None, None),
        ("ai.delta", 0, "Hel", True),
        ("ai.delta", 2, "lo!", None),
    ]
