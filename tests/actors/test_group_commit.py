"""Group commit: concurrent batches of several rooms share one transaction, and a message
the database refuses fails alone, on PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from actors.events import RoomEvent
from actors.group_commit import GroupCommit
from actors.room import RoomActor
from actors.room_messages import Post, topic
from errors import Invalid
from storage import migrate
from storage.bus import MemoryBus
from storage.cache import Cache
from storage.db import Database
from storage.kv import MemoryKeyValue
from storage.message_store import SqlMessageStore
from storage.messages import Appended, Author, NewMessage
from storage.models import Message, Room
from storage.presence import MemoryPresence
from storage.room_lists import RoomListCache
from tests import seed


class Counting(SqlMessageStore):
    """The real store, counting its transactions."""

    def __init__(self, database) -> None:
        super().__init__(database, RoomListCache(Cache(MemoryKeyValue())))
        self.commits = 0

    async def append_many(self, batch):
        self.commits += 1
        return await super().append_many(batch)


async def test_batches_of_several_rooms_arriving_together_commit_once(database) -> None:
    async with database.sessions.begin() as session:
        ada = await seed.user(session)
        crew = await seed.team(session, ada)
        rooms = [await seed.room(session, crew.team.id, ada, f"r{i}") for i in range(4)]
    store = Counting(database)
    group = GroupCommit(store)
    author = Author.user(ada.id, ada.name)

    async def send(room_id: str, n: int) -> list[int]:
        batch = [NewMessage(room_id, author, f"m{i}", client_id=f"{room_id}-{i}") for i in range(n)]
        return [appended.message.seq for appended in await group.append_many(batch)]

    first = asyncio.ensure_future(send(rooms[0].id, 2))  # starts a commit
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(send(room.id, 3)) for room in rooms[1:]]  # wait, together
    assert await first == [1, 2]
    assert [await r for r in rest] == [[1, 2, 3]] * 3
    assert store.commits == 2, "the three batches that waited went out as one transaction"


async def test_a_failing_room_does_not_fail_the_others_in_its_group(database) -> None:
    async with database.sessions.begin() as session:
        ada = await seed.user(session)
        crew = await seed.team(session, ada)
        good = await seed.room(session, crew.team.id, ada, "good")
    group = GroupCommit(Counting(database))
    author = Author.user(ada.id, ada.name)
    blocker = asyncio.ensure_future(group.append_many([NewMessage(good.id, author, "first")]))
    await asyncio.sleep(0)
    ok = asyncio.ensure_future(group.append_many([NewMessage(good.id, author, "ok")]))
    gone = asyncio.ensure_future(group.append_many([NewMessage("no-such-room", author, "x")]))
    assert (await blocker)[0].message.seq == 1
    assert (await ok)[0].message.seq == 2
    error = await asyncio.gather(gone, return_exceptions=True)
    assert type(error[0]).__name__ == "NotFound"


# Rows that get past validation but that the database refuses: a constraint on the row
# (an author who does not exist), and a value out of the column's range (bigint).
GHOST = "00000000-0000-4000-8000-000000000000"
POISONS = {
    "unknown author": lambda room_id, author: NewMessage(
        room_id, Author.user(GHOST, "ghost"), "boo", client_id="bad"
    ),
    "reply_to past bigint": lambda room_id, author: NewMessage(
        room_id, author, "boo", client_id="bad", reply_to=2**63
    ),
}


@pytest.fixture(params=["postgresql", "sqlite"])
async def any_database(request, database, tmp_path) -> AsyncIterator[Database]:
    """The test PostgreSQL, or a fresh migrated SQLite file."""
    if request.param == "postgresql":
        yield database
        return
    url = f"sqlite+aiosqlite:///{tmp_path / 'roomcast.db'}"
    await asyncio.to_thread(migrate.upgrade, url)
    lite = Database(url)
    yield lite
    await lite.close()


async def stored(database: Database, room_id: str) -> tuple[list[tuple[int, str | None]], int]:
    async with database.sessions() as session:
        rows = await session.execute(
            select(Message.seq, Message.client_id)
            .where(Message.room_id == room_id)
            .order_by(Message.seq)
        )
        last_seq = await session.scalar(select(Room.last_seq).where(Room.id == room_id))
    return [tuple(row) for row in rows], int(last_seq or 0)


@pytest.mark.parametrize("poison", POISONS)
async def test_a_message_the_database_refuses_fails_alone_and_its_batch_is_stored_gap_free(
    any_database, poison
) -> None:
    ada, _, lobby = await seed.user_team_room(any_database)
    author = Author.user(ada.id, ada.name)
    store = SqlMessageStore(any_database, RoomListCache(Cache(MemoryKeyValue())))
    bus = MemoryBus()
    published: list[int | None] = []
    await bus.subscribe(
        topic(lobby.id), lambda event: published.append(RoomEvent.unpack(event.data).seq)
    )
    room = RoomActor(lobby.id, store=GroupCommit(store), bus=bus, presence=MemoryPresence())
    room.start()
    loop = asyncio.get_running_loop()
    posts = [NewMessage(lobby.id, author, f"m{i}", client_id=f"c{i}") for i in range(7)]
    posts[3] = POISONS[poison](lobby.id, author)
    replies: list[asyncio.Future[Appended]] = [loop.create_future() for _ in posts]
    for post, reply in zip(posts, replies, strict=True):
        room.tell(Post(post, reply))  # told together: the room commits them as one batch
    outcomes = await asyncio.gather(*replies, return_exceptions=True)
    await room.stop()

    refused = outcomes.pop(3)
    assert isinstance(refused, Invalid), refused
    assert [(o.message.seq, o.message.client_id) for o in outcomes] == [
        (1, "c0"),
        (2, "c1"),
        (3, "c2"),
        (4, "c4"),
        (5, "c5"),
        (6, "c6"),
    ]
    assert await stored(any_database, lobby.id) == (
        [(1, "c0"), (2, "c1"), (3, "c2"), (4, "c4"), (5, "c5"), (6, "c6")],
        6,
    )
    assert published == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("poison", POISONS)
async def test_a_refused_message_fails_only_its_own_batch_in_a_combined_commit(
    any_database, poison
) -> None:
    async with any_database.sessions.begin() as session:
        ada = await seed.user(session)
        crew = await seed.team(session, ada)
        rooms = [await seed.room(session, crew.team.id, ada, f"r{i}") for i in range(3)]
    author = Author.user(ada.id, ada.name)
    group = GroupCommit(SqlMessageStore(any_database, RoomListCache(Cache(MemoryKeyValue()))))
    first = asyncio.ensure_future(group.append_many([NewMessage(rooms[0].id, author, "first")]))
    await asyncio.sleep(0)  # the batches below wait for it, then go out as one
    good = asyncio.ensure_future(group.append_many([NewMessage(rooms[1].id, author, "ok")]))
    bad = asyncio.ensure_future(group.append_many([POISONS[poison](rooms[2].id, author)]))
    later = asyncio.ensure_future(group.append_many([NewMessage(rooms[0].id, author, "next")]))
    assert [(await f)[0].message.seq for f in (first, good, later)] == [1, 1, 2]
    [refused] = await asyncio.gather(bad, return_exceptions=True)
    assert isinstance(refused, Invalid), refused
    assert await stored(any_database, rooms[2].id) == ([], 0)
