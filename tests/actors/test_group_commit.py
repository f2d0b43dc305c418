"""Group commit: concurrent batches of several rooms share one transaction, on PostgreSQL."""

from __future__ import annotations

import asyncio

from actors.group_commit import GroupCommit
from server.realtime import SqlMessageStore
from storage.cache import Cache
from storage.kv import MemoryKeyValue
from storage.messages import Author, NewMessage
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
