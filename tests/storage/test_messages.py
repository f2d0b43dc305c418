"""Stored messages: gap-free `seq` under concurrency, idempotent sends, pages in both directions."""

from __future__ import annotations

import asyncio
import re

import pytest
from sqlalchemy import func, select

from errors import Invalid, NotFound
from storage import messages, migrate, rooms
from storage.cache import Cache
from storage.db import Database
from storage.kv import MemoryKeyValue
from storage.message_store import SqlMessageStore
from storage.messages import Appended, Author, Generation, NewMessage
from storage.models import Message, Room
from storage.room_lists import RoomListCache
from tests import seed


@pytest.fixture
async def world(database):
    return await seed.user_team_room(database)


@pytest.fixture(params=["postgresql", "sqlite"])
async def concurrent_database(request, database, database_url, tmp_path):
    """A database with a pool wide enough for real concurrency, on either backend."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'roomcast.db'}"
        await asyncio.to_thread(migrate.upgrade, url)
    else:
        url = database_url
    wide = Database(url, pool_size=20)
    yield wide
    await wide.close()


async def append_alone(database: Database, room_id, author: Author, body, client_id=None):
    async with database.sessions.begin() as session:
        [appended] = await messages.append_many(
            session, [NewMessage(room_id, author, body, client_id)]
        )
    return appended


async def stored_seqs(database: Database, room_id: str) -> tuple[list[int], int]:
    async with database.sessions() as session:
        seqs = await session.scalars(
            select(Message.seq).where(Message.room_id == room_id).order_by(Message.seq)
        )
        last_seq = await session.scalar(select(Room.last_seq).where(Room.id == room_id))
    return list(seqs), int(last_seq or 0)


async def test_appends_take_consecutive_seqs_and_advance_the_room(database, world) -> None:
    ada, _, lobby = world
    author = Author.user(ada.id, ada.name)
    results = [await append_alone(database, lobby.id, author, f"hi {i}") for i in range(3)]
    assert [r.message.seq for r in results] == [1, 2, 3]
    assert not any(r.duplicate for r in results)
    assert await stored_seqs(database, lobby.id) == ([1, 2, 3], 3)


async def test_seq_is_gap_free_under_concurrent_appends(concurrent_database) -> None:
    ada, _, lobby = await seed.user_team_room(concurrent_database)
    author = Author.user(ada.id, ada.name)
    results = await asyncio.gather(
        *(append_alone(concurrent_database, lobby.id, author, f"m{i}") for i in range(60))
    )
    assert sorted(r.message.seq for r in results) == list(range(1, 61))
    assert await stored_seqs(concurrent_database, lobby.id) == (list(range(1, 61)), 60)


async def test_a_repeated_client_id_returns_the_first_message_and_takes_no_seq(
    database, world
) -> None:
    ada, _, lobby = world
    author = Author.user(ada.id, ada.name)
    first = await append_alone(database, lobby.id, author, "hello", "c-1")
    again = await append_alone(database, lobby.id, author, "hello, edited", "c-1")
    assert first.duplicate is False
    assert again == Appended(first.message, duplicate=True)
    assert again.message.body == "hello"
    after = await append_alone(database, lobby.id, author, "next", "c-2")
    assert after.message.seq == 2
    assert await stored_seqs(database, lobby.id) == ([1, 2], 2)


async def test_a_client_id_is_per_author_and_per_room(database, world) -> None:
    ada, crew, lobby = world
    async with database.sessions.begin() as session:
        bob = await seed.user(session, "Bob")
        await seed.member(session, crew.team.id, bob, "member")
        annex = await seed.room(session, crew.team.id, ada, "annex")
    ada_says = await append_alone(database, lobby.id, Author.user(ada.id, "Ada"), "a", "same")
    bob_says = await append_alone(database, lobby.id, Author.user(bob.id, "Bob"), "b", "same")
    elsewhere = await append_alone(database, annex.id, Author.user(ada.id, "Ada"), "c", "same")
    assert [r.duplicate for r in (ada_says, bob_says, elsewhere)] == [False, False, False]
    assert (ada_says.message.seq, bob_says.message.seq, elsewhere.message.seq) == (1, 2, 1)


async def test_concurrent_identical_sends_store_one_message(concurrent_database) -> None:
    wide_pool = concurrent_database
    ada, _, lobby = await seed.user_team_room(wide_pool)
    author = Author.user(ada.id, ada.name)
    sends = [append_alone(wide_pool, lobby.id, author, "once", "retry-me") for _ in range(12)]
    others = [append_alone(wide_pool, lobby.id, author, f"other {i}") for i in range(12)]
    results = await asyncio.gather(*sends, *others)
    retried = results[:12]
    assert sum(not r.duplicate for r in retried) == 1
    assert len({r.message.id for r in retried}) == 1
    assert await stored_seqs(wide_pool, lobby.id) == (list(range(1, 14)), 13)


async def test_a_batch_spans_rooms_in_order_and_flags_repeats_within_it(database, world) -> None:
    ada, crew, lobby = world
    async with database.sessions.begin() as session:
        annex = await seed.room(session, crew.team.id, ada, "annex")
    me = Author.user(ada.id, ada.name)
    posts = [
        NewMessage(lobby.id, me, "l1", "x"),
        NewMessage(annex.id, me, "a1", "x"),
        NewMessage(lobby.id, me, "l1 again", "x"),
        NewMessage(lobby.id, me, "l2"),
        NewMessage(annex.id, me, "a2", "y"),
    ]
    async with database.sessions.begin() as session:
        results = await messages.append_many(session, posts)
    assert [(r.message.room_id, r.message.seq, r.duplicate) for r in results] == [
        (lobby.id, 1, False),
        (annex.id, 1, False),
        (lobby.id, 1, True),
        (lobby.id, 2, False),
        (annex.id, 2, False),
    ]
    assert results[2].message == results[0].message
    assert await stored_seqs(database, lobby.id) == ([1, 2], 2)


async def test_appending_to_an_unknown_room_is_not_found_and_stores_nothing(
    database, world
) -> None:
    ada, _, lobby = world
    me = Author.user(ada.id, ada.name)
    posts = [NewMessage(lobby.id, me, "ok"), NewMessage("no-such-room", me, "lost")]
    with pytest.raises(NotFound):
        async with database.sessions.begin() as session:
            await messages.append_many(session, posts)
    assert await stored_seqs(database, lobby.id) == ([], 0)


async def test_an_overlong_client_id_or_a_nul_in_the_body_is_invalid(database, world) -> None:
    ada, _, lobby = world
    me = Author.user(ada.id, ada.name)
    with pytest.raises(Invalid):
        await append_alone(database, lobby.id, me, "x", "c" * 65)
    with pytest.raises(Invalid):
        await append_alone(database, lobby.id, me, "nul \x00 here")
    assert await stored_seqs(database, lobby.id) == ([], 0)


async def test_a_user_message_is_the_protocol_message_event(database, world) -> None:
    ada, _, lobby = world
    stored = await append_alone(database, lobby.id, Author.user(ada.id, "Ada"), "hi 😀", "c-17")
    event = stored.message.to_event()
    ts = event.pop("ts")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ts)
    assert event == {
        "type": "message",
        "room": lobby.id,
        "seq": 1,
        "id": stored.message.id,
        "client_id": "c-17",
        "author": {"id": ada.id, "name": "Ada", "kind": "user"},
        "body": "hi 😀",
    }


async def test_an_assistant_answer_is_stored_with_its_generation(database, world) -> None:
    ada, _, lobby = world
    prompt = await append_alone(database, lobby.id, Author.user(ada.id, "Ada"), "what is 2+2?")
    generation = Generation("gen-1", "gemini-2.5-flash", "stop", input_tokens=12, output_tokens=2)
    reply = NewMessage(
        lobby.id, Author.assistant(), "4", reply_to=prompt.message.seq, generation=generation
    )
    async with database.sessions.begin() as session:
        [answer] = await messages.append_many(session, [reply])
    async with database.sessions() as session:
        [read_back] = (await messages.page(session, lobby.id, after_seq=1)).items
    assert read_back == answer.message
    event = read_back.to_event()
    assert event["author"] == {"id": None, "name": "Assistant", "kind": "assistant"}
    assert (event["seq"], event["reply_to"], event["gen"]) == (2, 1, "gen-1")
    assert (event["model"], event["finish"]) == ("gemini-2.5-flash", "stop")
    assert event["usage"] == {"input_tokens": 12, "output_tokens": 2}


async def read_page(database: Database, room_id: str, **kwargs) -> messages.MessagePage:
    async with database.sessions() as session:
        return await messages.page(session, room_id, **kwargs)


async def test_pages_walk_250_messages_backwards_across_page_boundaries(database, world) -> None:
    ada, _, lobby = world
    await seed.messages(database, lobby.id, Author.user(ada.id, ada.name), 250)
    newest = await read_page(database, lobby.id, limit=100)
    assert [m.seq for m in newest.items] == list(range(151, 251))
    assert newest.more
    seen = [m.seq for m in newest.items]
    while True:
        older = await read_page(database, lobby.id, before_seq=seen[0], limit=100)
        seen = [m.seq for m in older.items] + seen
        if not older.more:
            break
    assert seen == list(range(1, 251))
    assert [m.body for m in older.items[:2]] == ["m1", "m2"]


async def test_pages_walk_250_messages_forwards_across_page_boundaries(database, world) -> None:
    ada, _, lobby = world
    await seed.messages(database, lobby.id, Author.user(ada.id, ada.name), 250)
    seen: list[int] = []
    after, pages = 0, 0
    while True:
        newer = await read_page(database, lobby.id, after_seq=after, limit=100)
        seen += [m.seq for m in newer.items]
        pages += 1
        if not newer.more:
            break
        after = newer.items[-1].seq
    assert (seen, pages) == (list(range(1, 251)), 3)


async def test_a_page_between_two_seqs_is_ascending_from_the_lower(database, world) -> None:
    ada, _, lobby = world
    await seed.messages(database, lobby.id, Author.user(ada.id, ada.name), 30)
    window = await read_page(database, lobby.id, after_seq=10, before_seq=20, limit=5)
    assert ([m.seq for m in window.items], window.more) == ([11, 12, 13, 14, 15], True)
    rest = await read_page(database, lobby.id, after_seq=15, before_seq=20, limit=5)
    assert ([m.seq for m in rest.items], rest.more) == ([16, 17, 18, 19], False)
    empty = await read_page(database, lobby.id, before_seq=1)
    assert (empty.items, empty.more) == ([], False)


async def test_a_replay_is_the_events_between_two_seqs(database, world) -> None:
    ada, _, lobby = world
    await seed.messages(database, lobby.id, Author.user(ada.id, ada.name), 10)
    store = SqlMessageStore(database, RoomListCache(Cache(MemoryKeyValue())))
    replay = await store.events_between(lobby.id, 7, 10)
    capped = await store.events_between(lobby.id, 0, 4)
    nothing = await store.events_between(lobby.id, 10, 10)
    assert [event["seq"] for event in replay] == [8, 9, 10]
    assert [event["body"] for event in capped] == ["m1", "m2", "m3", "m4"]
    assert nothing == []


async def test_deleting_a_room_deletes_its_messages(database, world) -> None:
    ada, _, lobby = world
    await seed.messages(database, lobby.id, Author.user(ada.id, ada.name), 5)
    async with database.sessions.begin() as session:
        await rooms.delete_room(session, lobby.id)
    async with database.sessions() as session:
        left = await session.scalar(select(func.count()).select_from(Message))
    assert left == 0


# The one-statement path (PostgreSQL): what the realtime committer tries first.


async def append_at_once(database: Database, posts: list[NewMessage]) -> list[Appended] | None:
    async with database.autocommit.connect() as connection:
        return await messages.append_at_once(connection, posts)


async def test_at_once_numbers_a_batch_over_rooms_like_append_many(database, world) -> None:
    ada, crew, lobby = world
    async with database.sessions.begin() as session:
        annex = await seed.room(session, crew.team.id, ada, "annex")
    me = Author.user(ada.id, ada.name)
    await append_alone(database, lobby.id, me, "before")
    posts = [
        NewMessage(annex.id, me, "a1", "x"),
        NewMessage(lobby.id, me, "l2", "x"),
        NewMessage(lobby.id, me, "l3"),
        NewMessage(annex.id, me, "a2", "y", reply_to=1),
    ]
    results = await append_at_once(database, posts)
    assert results is not None
    assert [(r.message.room_id, r.message.seq, r.duplicate) for r in results] == [
        (annex.id, 1, False),
        (lobby.id, 2, False),
        (lobby.id, 3, False),
        (annex.id, 2, False),
    ]
    assert await stored_seqs(database, lobby.id) == ([1, 2, 3], 3)
    assert await stored_seqs(database, annex.id) == ([1, 2], 2)
    async with database.sessions() as session:
        page = await messages.page(session, annex.id)
    assert [m.to_event() for m in page.items] == [r.message.to_event() for r in results[::3]]


async def test_at_once_stores_an_answer_with_its_generation(database, world) -> None:
    _, _, lobby = world
    generation = Generation("g-1", "gemini-x", "stop", 12, 34)
    answer = NewMessage(lobby.id, Author.assistant(), "42", reply_to=7, generation=generation)
    [result] = await append_at_once(database, [answer]) or []
    async with database.sessions() as session:
        [stored] = (await messages.page(session, lobby.id)).items
    assert stored == result.message
    assert stored.generation == generation


@pytest.mark.parametrize("why", ["stored before", "twice in the batch", "unknown room"])
async def test_at_once_declines_and_stores_nothing_when_the_exact_path_is_needed(
    database, world, why
) -> None:
    ada, _, lobby = world
    me = Author.user(ada.id, ada.name)
    await append_alone(database, lobby.id, me, "first", "c-1")
    posts = [NewMessage(lobby.id, me, "fresh", "c-2")]
    if why == "stored before":
        posts.append(NewMessage(lobby.id, me, "retry", "c-1"))
    elif why == "twice in the batch":
        posts.append(NewMessage(lobby.id, me, "fresh again", "c-2"))
    else:
        posts.append(NewMessage("no-such-room", me, "lost"))
    assert await append_at_once(database, posts) is None
    assert await stored_seqs(database, lobby.id) == ([1], 1)


async def test_at_once_is_invalid_like_append_many(database, world) -> None:
    ada, _, lobby = world
    me = Author.user(ada.id, ada.name)
    with pytest.raises(Invalid):
        await append_at_once(database, [NewMessage(lobby.id, me, "nul \x00 here")])
    assert await stored_seqs(database, lobby.id) == ([], 0)


async def test_a_value_postgresql_refuses_is_invalid_on_both_paths_and_stores_nothing(
    database, world
) -> None:
    # A generation id past its column's 36 characters: PostgreSQL's SQLSTATE 22001, not a
    # driver error; the client hears `invalid`, never the SQL.
    _, _, lobby = world
    generation = Generation("g" * 40, "gemini-x", "stop", 1, 2)
    answer = NewMessage(lobby.id, Author.assistant(), "42", reply_to=1, generation=generation)
    with pytest.raises(Invalid) as at_once:
        await append_at_once(database, [answer])
    with pytest.raises(Invalid) as exact:
        async with database.engine.begin() as connection:
            await messages.append_many(connection, [answer])
    assert at_once.value.message == exact.value.message == messages.REFUSED
    assert await stored_seqs(database, lobby.id) == ([], 0)


@pytest.mark.parametrize(
    ("field", "post"),
    [
        ("body", lambda room, me: NewMessage(room, me, "a\x00b")),
        ("client_id", lambda room, me: NewMessage(room, me, "hi", client_id="a\x00b")),
        ("author", lambda room, me: NewMessage(room, Author.user(me.id, "A\x00da"), "hi")),
        ("body", lambda room, me: NewMessage(room, me, "cut \ud83d")),
    ],
)
async def test_a_string_neither_database_can_hold_is_invalid_before_any_statement(
    concurrent_database, field, post
) -> None:
    ada, _, lobby = await seed.user_team_room(concurrent_database)
    with pytest.raises(Invalid) as refused:
        async with concurrent_database.engine.begin() as connection:
            await messages.append_many(connection, [post(lobby.id, Author.user(ada.id, "Ada"))])
    assert refused.value.message.startswith(f"{field}: must ")
    assert await stored_seqs(concurrent_database, lobby.id) == ([], 0)


async def test_at_once_declines_on_sqlite(tmp_path, world) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'roomcast.db'}"
    await asyncio.to_thread(migrate.upgrade, url)
    lite = Database(url)
    try:
        ada, _, lobby = await seed.user_team_room(lite)
        me = Author.user(ada.id, ada.name)
        assert await append_at_once(lite, [NewMessage(lobby.id, me, "hi")]) is None
    finally:
        await lite.close()


async def test_at_once_and_exact_batches_racing_over_two_rooms_stay_gap_free(database) -> None:
    """Many connections, batches over both rooms in either order, both paths at once."""
    wide = Database(database.url, pool_size=30)  # 30 + 30 overflow: one for each of 60 tasks
    try:
        ada, crew, lobby = await seed.user_team_room(wide)
        async with wide.sessions.begin() as session:
            annex = await seed.room(session, crew.team.id, ada, "annex")
        me = Author.user(ada.id, ada.name)

        async def at_once(i: int) -> None:
            rooms_in_order = (lobby.id, annex.id) if i % 2 else (annex.id, lobby.id)
            posts = [NewMessage(room, me, f"{i}", f"o{i}-{room}") for room in rooms_in_order]
            assert await append_at_once(wide, posts) is not None

        async def exact(i: int) -> None:
            async with wide.engine.begin() as connection:
                posts = [NewMessage(annex.id, me, f"{i}"), NewMessage(lobby.id, me, f"{i}")]
                await messages.append_many(connection, posts)

        await asyncio.gather(*(at_once(i) for i in range(30)), *(exact(i) for i in range(30)))
        for room in (lobby, annex):
            assert await stored_seqs(wide, room.id) == (list(range(1, 61)), 60)
    finally:
        await wide.close()
