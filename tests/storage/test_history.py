"""A room's history walked page by page with nothing but the cursor each page hands out."""

from __future__ import annotations

import asyncio

import pytest

from errors import Invalid
from storage import history, migrate
from storage.db import Database
from storage.messages import Author
from storage.pagination import encode_cursor
from tests import seed


@pytest.fixture(params=["postgresql", "sqlite"])
async def backend(request, database, database_url, tmp_path):
    """The test database, or a fresh SQLite one: the walk must be the same on both."""
    if request.param == "postgresql":
        yield database
        return
    url = f"sqlite+aiosqlite:///{tmp_path / 'roomcast.db'}"
    await asyncio.to_thread(migrate.upgrade, url)
    sqlite = Database(url, pool_size=1)
    yield sqlite
    await sqlite.close()


async def room_with(database: Database, count: int) -> str:
    ada, _, lobby = await seed.user_team_room(database)
    await seed.messages(database, lobby.id, Author.user(ada.id, ada.name), count)
    return lobby.id


async def walk(
    database: Database, room_id: str, first: history.Window, limit: int
) -> list[list[int]]:
    """The seqs of every page, from the one `first` opens to the one without a cursor."""
    pages: list[list[int]] = []
    window: history.Window | None = first
    while window is not None:
        assert len(pages) < 20, f"the walk does not end: {pages[-2:]}"
        async with database.sessions() as session:
            page = await history.page(session, room_id, window, limit=limit)
        pages.append([message.seq for message in page.items])
        cursor = page.next_cursor
        window = None if cursor is None else history.Window.from_cursor(cursor)
    return pages


async def test_the_cursor_walks_back_from_the_newest_to_the_first_message(backend) -> None:
    room_id = await room_with(backend, 250)
    pages = await walk(backend, room_id, history.Window(), limit=100)
    assert pages == [list(range(151, 251)), list(range(51, 151)), list(range(1, 51))]


async def test_the_cursor_walks_forward_from_after_seq_to_the_newest_message(backend) -> None:
    room_id = await room_with(backend, 250)
    pages = await walk(backend, room_id, history.Window(after_seq=0), limit=100)
    assert pages == [list(range(1, 101)), list(range(101, 201)), list(range(201, 251))]


async def test_a_forward_walk_keeps_the_before_seq_it_began_with(backend) -> None:
    room_id = await room_with(backend, 30)
    pages = await walk(backend, room_id, history.Window(before_seq=20, after_seq=5), limit=5)
    assert pages == [[6, 7, 8, 9, 10], [11, 12, 13, 14, 15], [16, 17, 18, 19]]


async def test_a_back_walk_from_before_seq_ends_at_the_first_message(backend) -> None:
    room_id = await room_with(backend, 12)
    pages = await walk(backend, room_id, history.Window(before_seq=8), limit=3)
    assert pages == [[5, 6, 7], [2, 3, 4], [1]]


async def test_a_page_that_fits_the_limit_exactly_hands_out_no_cursor(backend) -> None:
    room_id = await room_with(backend, 10)
    assert await walk(backend, room_id, history.Window(), limit=10) == [list(range(1, 11))]
    assert await walk(backend, room_id, history.Window(after_seq=10), limit=10) == [[]]


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64 at all!",
        encode_cursor("back", "12"),  # too few parts
        encode_cursor("sideways", "12", ""),
        encode_cursor("back", "12", "40"),  # a back walk has no lower bound to carry
        encode_cursor("forward", "-1", ""),
        encode_cursor("forward", "1" * 19, ""),
        encode_cursor("forward", "3", "x"),
    ],
)
def test_a_cursor_this_list_did_not_hand_out_is_invalid(cursor: str) -> None:
    with pytest.raises(Invalid, match="cursor") as refused:
        history.Window.from_cursor(cursor)
    assert refused.value.details == {"fields": {"cursor": "invalid cursor"}}
