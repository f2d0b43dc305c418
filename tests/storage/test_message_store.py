"""The message store the room actors use: its warm-up and the tick's read of many rooms."""

from __future__ import annotations

from sqlalchemy import event, func, select

from storage.cache import Cache
from storage.db import Database
from storage.kv import MemoryKeyValue
from storage.message_store import SqlMessageStore
from storage.messages import Author, NewMessage
from storage.models import Message
from storage.room_lists import RoomListCache
from tests import seed


def a_store(database: Database) -> SqlMessageStore:
    return SqlMessageStore(database, RoomListCache(Cache(MemoryKeyValue())))


async def test_warming_up_stores_nothing_and_prepares_the_append_on_each_connection(
    database: Database,
) -> None:
    ada, _, lobby = await seed.user_team_room(database)
    store = a_store(database)
    appends: list[object] = []

    def seen(conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "INSERT INTO messages" in statement:
            appends.append(conn)

    event.listen(database.engine.sync_engine, "before_cursor_execute", seen)
    try:
        await store.warm_up(connections=3)
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", seen)

    assert len(set(map(id, appends))) == 3  # three connections, each ran the append
    async with database.reads() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 0
    assert (await store.rooms([lobby.id]))[lobby.id].last_seq == 0
    [appended] = await store.append_many(
        [NewMessage(lobby.id, Author.user(ada.id, ada.name), "hi")]
    )
    assert appended.message.seq == 1


async def test_rooms_reads_the_existing_ones_and_leaves_out_the_rest(database: Database) -> None:
    ada, crew, lobby = await seed.user_team_room(database)
    async with database.sessions.begin() as session:
        annex = await seed.room(session, crew.team.id, ada, "annex")
    found = await a_store(database).rooms([lobby.id, annex.id, "no-such-room"])
    assert {room_id: room.name for room_id, room in found.items()} == {
        lobby.id: "lobby",
        annex.id: "annex",
    }
