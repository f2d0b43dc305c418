"""The assistant's context comes from the room's memory: loaded once when the room starts,
grown by every commit and every stored event the room orders, and read from the database
again only when the memory cannot vouch for it.

Real storage and the real room; the model records the prompts it is asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import event

from actors.assistant import AssistantConfig
from actors.assistant_memory import ContextMemory, Remembered
from actors.events import RoomEvent
from actors.llm import Chunk, Prompt, Turn
from actors.outbound import OutboundQueue
from actors.ports import UserRef
from actors.room import RoomActor
from actors.room_messages import AssistantDeps, Enter, FromBus, Member, Post
from server.billing.quotas import Quotas
from server.config import PlanLimits
from storage import rooms
from storage.bus import MemoryBus
from storage.cache import Cache
from storage.db import Database
from storage.kv import KeyValue, MemoryKeyValue, RedisKeyValue
from storage.message_store import SqlMessageStore
from storage.messages import Appended, Author, NewMessage, StoredMessage, append_many
from storage.presence import MemoryPresence
from storage.room_lists import RoomListCache
from storage.rooms import RoomRecord
from tests import seed
from tests.actors.test_room_tasks import Collected
from tests.services import RedisServer


def stored(seq: int, body: str, author: Author | None = None) -> StoredMessage:
    who = author or Author.user("u1", "Ada")
    now = datetime.now(UTC)
    return StoredMessage(f"m{seq}", "r1", seq, who, body, None, None, None, now)


def texts(turns: Sequence[Turn] | None) -> list[str] | None:
    return None if turns is None else [turn.text for turn in turns]


# The memory on its own.


def test_memory_holds_messages_in_seq_order_whatever_order_they_come_in() -> None:
    memory = ContextMemory(max_tokens=1000, max_messages=100)
    memory.load([stored(1, "a")], upto=1)
    memory.add(Remembered.of(stored(3, "c")))
    assert memory.context(3) is None  # seq 2 is missing: the database must say
    memory.add(Remembered.of(stored(2, "b", Author.assistant())))
    memory.add(Remembered.of(stored(2, "b again")))  # a duplicate changes nothing
    assert texts(memory.context(3)) == ["Ada: a", "b", "Ada: c"]
    assert texts(memory.context(2)) == ["Ada: a", "b"]


def test_memory_keeps_what_came_before_it_was_loaded_and_after_its_load() -> None:
    memory = ContextMemory(max_tokens=1000, max_messages=100)
    memory.add(Remembered.of(stored(3, "c")))  # committed while the load was on its way
    memory.load([stored(1, "a"), stored(2, "b")], upto=2)
    assert texts(memory.context(3)) == ["Ada: a", "Ada: b", "Ada: c"]


def test_memory_forgets_the_oldest_past_its_bounds() -> None:
    memory = ContextMemory(max_tokens=1000, max_messages=3)
    memory.load([], upto=0)
    for seq in range(1, 6):
        memory.add(Remembered.of(stored(seq, f"m{seq}")))
    assert texts(memory.context(5)) == ["Ada: m3", "Ada: m4", "Ada: m5"]
    assert memory.context(2) is None  # forgotten: the database has it


# In a room.


class Recording:
    """A model that answers "ok" and keeps every prompt it was given."""

    model = "recording"

    def __init__(self) -> None:
        self.prompts: list[Prompt] = []

    async def stream(self, prompt: Prompt) -> AsyncGenerator[Chunk, None]:
        self.prompts.append(prompt)
        yield Chunk("ok", "stop")

    async def warm_up(self) -> None:
        pass

    async def close(self) -> None:
        pass


class Counting(SqlMessageStore):
    """The real store, counting the reads a prompt's context could cost."""

    def __init__(self, database: Database) -> None:
        super().__init__(database, RoomListCache(Cache(MemoryKeyValue())))
        self.recent_reads = 0

    async def recent(self, room_id: str, upto: int, limit: int) -> list[StoredMessage]:
        self.recent_reads += 1
        return await super().recent(room_id, upto, limit)


class Room:
    def __init__(
        self, database: Database, record: RoomRecord, author: Author, kv: KeyValue | None = None
    ) -> None:
        self.store = Counting(database)
        self.llm = Recording()
        self.record = record
        self.author = author
        self.quotas = Quotas(kv or MemoryKeyValue(), database, PlanLimits())
        deps = AssistantDeps(self.llm, self.quotas, AssistantConfig())
        self.actor = RoomActor(
            record.id, store=self.store, bus=MemoryBus(), presence=MemoryPresence(), assistant=deps
        )

    async def prompt(self, body: str) -> Prompt:
        reply: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        message = NewMessage(self.record.id, self.author, body, client_id=body)
        asked = len(self.llm.prompts)
        self.actor.tell(Post(message, reply, ai=True))
        await asyncio.wait_for(reply, 5)
        while len(self.llm.prompts) == asked or self.actor.assistant.busy:
            await asyncio.sleep(0.005)
        return self.llm.prompts[-1]


async def a_room(database: Database, kv: KeyValue | None = None) -> Room:
    """A room in `mention` mode with a system prompt and two messages before it starts."""
    ada, _, record = await seed.user_team_room(database)
    async with database.sessions.begin() as session:
        changed = await rooms.change(
            session, record.id, assistant="mention", system_prompt="Be terse."
        )
    assert changed is not None
    author = Author.user(ada.id, ada.name)
    await seed.messages(database, record.id, author, 2)
    room = Room(database, changed, author, kv)
    room.actor.start()
    return room


@pytest.fixture
async def room(database: Database) -> AsyncIterator[Room]:
    room = await a_room(database)
    yield room
    await room.actor.stop()
    await room.quotas.close()


def user_texts(prompt: Prompt) -> list[str]:
    return [line for turn in prompt.turns for line in turn.text.split("\n")]


async def test_a_prompt_is_built_from_the_rooms_memory_without_reading_the_database(
    room: Room,
) -> None:
    first = await room.prompt("what now?")
    name = room.author.name
    assert first.system == "Be terse."
    assert user_texts(first) == [f"{name}: m1", f"{name}: m2", f"{name}: what now?"]
    second = await room.prompt("and then?")
    assert [turn.text for turn in second.turns][-2:] == ["ok", f"{name}: and then?"]
    assert room.store.recent_reads == 1  # the load when the room started, nothing since


async def another_author(database: Database, name: str) -> Author:
    """A new user `name` as the author of messages stored by another instance."""
    async with database.sessions.begin() as session:
        user = await seed.user(session, name)
    return Author.user(user.id, user.name)


async def test_messages_from_other_instances_join_the_context_in_seq_order(
    room: Room, database: Database
) -> None:
    await room.prompt("first")  # seq 3, answered as seq 4
    # Another instance commits seq 5 and publishes it; here it arrives over the bus.
    other = await another_author(database, "Bo")
    async with database.sessions.begin() as session:
        [appended] = await append_many(session, [NewMessage(room.record.id, other, "hi there")])
    event: dict[str, Any] = appended.message.to_event()
    room.actor.tell(FromBus(RoomEvent.of(event)))
    prompt = await room.prompt("second")
    assert user_texts(prompt)[-2:] == ["Bo: hi there", f"{room.author.name}: second"]
    assert room.store.recent_reads == 1


async def test_a_message_the_room_never_got_sends_the_prompt_to_the_database(
    room: Room, database: Database
) -> None:
    await room.prompt("first")  # seq 3, answered as seq 4
    other = await another_author(database, "Bo")
    async with database.sessions.begin() as session:  # seq 5, never published
        await append_many(session, [NewMessage(room.record.id, other, "missed")])
    prompt = await room.prompt("second")
    assert user_texts(prompt)[-2:] == ["Bo: missed", f"{room.author.name}: second"]
    assert room.store.recent_reads == 2
    await room.prompt("third")
    assert room.store.recent_reads == 2  # the memory was reloaded with it


async def test_a_prompt_whose_allowance_cannot_be_checked_is_refused_as_unavailable(
    database: Database, own_redis: RedisServer
) -> None:
    client = Redis.from_url(own_redis.url, socket_timeout=1, socket_connect_timeout=1)
    room = await a_room(database, RedisKeyValue(client))
    sender = Collected()
    member = Member("s-sender", UserRef(room.author.id or "", room.author.name), sender)
    await room.actor.ask(lambda reply: Enter(member, None, None, reply), timeout=5)
    own_redis.stop()
    reply: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
    message = NewMessage(room.record.id, room.author, "answer me", client_id="c1")
    room.actor.tell(Post(message, reply, ai=True, session_id="s-sender", re="r1"))
    appended = await asyncio.wait_for(reply, 5)  # stored and acked all the same
    while not sender.of_type("error"):
        await asyncio.sleep(0.005)
    [refused] = sender.of_type("error")
    assert (refused["code"], refused["re"]) == ("unavailable", "r1")
    assert refused["seq"] == appended.message.seq
    assert room.llm.prompts == []
    assert not room.actor.assistant.busy
    await room.actor.stop()
    await room.quotas.close()
    await client.aclose()


async def test_a_member_who_enters_gets_an_allowance_ready_so_their_prompt_reads_no_plan(
    room: Room, database: Database
) -> None:
    """Entering a room that answers prompts starts the quota's lookup of the user; their
    prompt then counts against memory, with no read of plans or counters on its way."""
    assert room.author.id is not None
    member = Member("s1", UserRef(room.author.id, room.author.name), OutboundQueue())
    quota_reads: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().startswith("SELECT") and (
            "subscriptions" in statement or "usage_counters" in statement
        ):
            quota_reads.append(statement)

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        await room.actor.ask(lambda reply: Enter(member, None, None, reply), timeout=5)
        await room.prompt("ready?")  # whether or not the lookup has ended by now
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    # The lookup's two statements for a batch of users; nothing for this user alone.
    assert len(quota_reads) == 2
    assert all(" IN " in statement for statement in quota_reads)
    assert await room.quotas.used_today(room.author.id) == 1
