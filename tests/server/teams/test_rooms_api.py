"""The Rooms and history section of docs/protocol.md, with its errors and its cache."""

from __future__ import annotations

from sqlalchemy import select

from storage import messages, rooms
from storage.messages import Author, Generation, NewMessage
from storage.models import Team
from tests import seed
from tests.server.teams.conftest import Crew, error_code, row_counts


async def create_room(crew: Crew, body, who: str = "member", team_id: str | None = None):
    return await crew.call("POST", f"/teams/{team_id or crew.team_id}/rooms", who, json=body)


async def room_names(crew: Crew, who: str = "member") -> list[str]:
    response = await crew.call("GET", f"/teams/{crew.team_id}/rooms", who)
    assert response.status == 200
    return [room["name"] for room in (await response.json())["items"]]


async def test_any_member_creates_a_room_that_mentions_the_assistant_by_default(
    crew: Crew,
) -> None:
    response = await create_room(crew, {"name": "ideas"})
    assert response.status == 201
    room = await response.json()
    assert room["created_at"].endswith("Z")
    assert {k: v for k, v in room.items() if k not in ("id", "created_at")} == {
        "team_id": crew.team_id,
        "name": "ideas",
        "assistant": "mention",
        "system_prompt": None,
        "last_seq": 0,
    }


async def test_a_room_in_a_personal_team_answers_every_message_by_default(crew: Crew) -> None:
    async with crew.database.sessions() as session:
        personal = await session.scalar(select(Team.id).where(Team.name == "Mia Member's team"))
    room = await (await create_room(crew, {"name": "notes"}, team_id=personal)).json()
    assert room["assistant"] == "auto"
    quiet = await create_room(crew, {"name": "quiet", "assistant": "off"}, team_id=personal)
    assert (await quiet.json())["assistant"] == "off"


async def test_a_room_keeps_its_system_prompt_up_to_the_limit(crew: Crew) -> None:
    prompt = "Answer like a pirate.\n" + "x" * (rooms.MAX_SYSTEM_PROMPT - 22)
    made = await create_room(crew, {"name": "pirates", "system_prompt": prompt})
    assert (await made.json())["system_prompt"] == prompt
    too_long = await create_room(crew, {"name": "essays", "system_prompt": prompt + "!"})
    assert (too_long.status, await error_code(too_long)) == (400, "invalid")
    assert (await too_long.json())["error"]["details"]["fields"].keys() == {"system_prompt"}


async def test_rooms_are_listed_oldest_first_a_page_at_a_time(crew: Crew) -> None:
    for name in ("b", "c", "d"):
        await create_room(crew, {"name": name})
    first = await (
        await crew.call("GET", f"/teams/{crew.team_id}/rooms", params={"limit": "3"})
    ).json()
    assert [room["name"] for room in first["items"]] == ["lobby", "b", "c"]
    rest = await crew.call(
        "GET", f"/teams/{crew.team_id}/rooms", params={"limit": "3", "cursor": first["next_cursor"]}
    )
    page = await rest.json()
    assert ([room["name"] for room in page["items"]], page["next_cursor"]) == (["d"], None)


async def test_a_room_is_shown_to_members_of_its_team(crew: Crew) -> None:
    response = await crew.call("GET", f"/rooms/{crew.room_id}", "member")
    assert response.status == 200
    room = await response.json()
    assert (room["id"], room["team_id"], room["name"]) == (crew.room_id, crew.team_id, "lobby")


async def test_an_admin_renames_a_room_and_sets_and_clears_its_prompt(crew: Crew) -> None:
    path = f"/rooms/{crew.room_id}"
    body = {"name": "hall", "assistant": "auto", "system_prompt": "Be brief."}
    changed = await crew.call("PATCH", path, "admin", json=body)
    assert changed.status == 200
    room = await changed.json()
    assert (room["name"], room["assistant"], room["system_prompt"]) == ("hall", "auto", "Be brief.")
    kept = await (await crew.call("PATCH", path, "admin", json={"name": "hall 2"})).json()
    assert (kept["assistant"], kept["system_prompt"]) == ("auto", "Be brief.")
    cleared = await (await crew.call("PATCH", path, "admin", json={"system_prompt": None})).json()
    assert (cleared["name"], cleared["system_prompt"]) == ("hall 2", None)
    refused = await crew.call("PATCH", path, "member", json={"name": "mine"})
    assert (refused.status, await error_code(refused)) == (403, "forbidden")


async def test_an_admin_deletes_a_room_with_its_messages(crew: Crew) -> None:
    await seed.messages(crew.database, crew.room_id, mia(crew), 3)
    deleted = await crew.call("DELETE", f"/rooms/{crew.room_id}", "admin")
    assert deleted.status == 204
    for path in (f"/rooms/{crew.room_id}", f"/rooms/{crew.room_id}/messages"):
        gone = await crew.call("GET", path)
        assert (gone.status, await error_code(gone)) == (404, "not_found")
    assert (await row_counts(crew.database))["messages"] == 0


async def test_the_room_list_is_never_stale_after_create_rename_or_delete(crew: Crew) -> None:
    assert await room_names(crew) == ["lobby"]
    # A change behind the API's back shows the list really comes from the cache...
    async with crew.database.sessions.begin() as session:
        await rooms.change(session, crew.room_id, name="renamed behind the cache")
    assert await room_names(crew) == ["lobby"]
    # ...and each change through the API is seen by the very next read.
    made = await (await create_room(crew, {"name": "new"})).json()
    assert await room_names(crew) == ["renamed behind the cache", "new"]
    await crew.call("PATCH", f"/rooms/{made['id']}", "admin", json={"name": "newer"})
    assert await room_names(crew) == ["renamed behind the cache", "newer"]
    await crew.call("PATCH", f"/rooms/{made['id']}", "admin", json={"assistant": "off"})
    listed = await (await crew.call("GET", f"/teams/{crew.team_id}/rooms")).json()
    assert listed["items"][1]["assistant"] == "off"
    await crew.call("DELETE", f"/rooms/{crew.room_id}", "admin")
    assert await room_names(crew, "owner") == ["newer"]


def mia(crew: Crew) -> Author:
    return Author.user(crew.member.id, "Mia Member")


async def history(crew: Crew, **params):
    query = {key: str(value) for key, value in params.items()}
    response = await crew.call("GET", f"/rooms/{crew.room_id}/messages", "member", params=query)
    assert response.status == 200, await response.text()
    return await response.json()


async def walk_history(crew: Crew, **first) -> list[list[int]]:
    """The seqs of every page: the first asked for with `first`, each next one with
    `?cursor=` alone (and the same limit), until a page hands out no cursor."""
    pages: list[list[int]] = []
    page = await history(crew, **first)
    pages.append([m["seq"] for m in page["items"]])
    limit = {"limit": first["limit"]} if "limit" in first else {}
    while page["next_cursor"] is not None:
        assert len(pages) < 20, f"the walk does not end: {pages[-2:]}"
        page = await history(crew, cursor=page["next_cursor"], **limit)
        pages.append([m["seq"] for m in page["items"]])
    return pages


async def test_history_pages_back_through_250_messages_by_cursor_alone(crew: Crew) -> None:
    await seed.messages(crew.database, crew.room_id, mia(crew), 250)
    newest = await history(crew)
    assert [m["seq"] for m in newest["items"]] == list(range(201, 251))
    pages = await walk_history(crew, limit=100)
    assert pages == [list(range(151, 251)), list(range(51, 151)), list(range(1, 51))]
    assert await walk_history(crew) == [list(range(s, s + 50)) for s in (201, 151, 101, 51, 1)]


async def test_history_pages_forward_through_250_messages_by_cursor_alone(crew: Crew) -> None:
    await seed.messages(crew.database, crew.room_id, mia(crew), 250)
    pages = await walk_history(crew, limit=100, after_seq=0)
    assert pages == [list(range(1, 101)), list(range(101, 201)), list(range(201, 251))]


async def test_a_forward_walk_by_cursor_stays_below_the_before_seq_it_began_with(
    crew: Crew,
) -> None:
    await seed.messages(crew.database, crew.room_id, mia(crew), 30)
    pages = await walk_history(crew, limit=4, after_seq=10, before_seq=20)
    assert pages == [[11, 12, 13, 14], [15, 16, 17, 18], [19]]


async def test_a_back_walk_by_cursor_skips_and_repeats_nothing_while_messages_arrive(
    crew: Crew,
) -> None:
    await seed.messages(crew.database, crew.room_id, mia(crew), 25)
    page = await history(crew, limit=10)
    seqs = [m["seq"] for m in page["items"]]
    while page["next_cursor"] is not None:
        await seed.messages(crew.database, crew.room_id, mia(crew), 3)  # newer, above the walk
        page = await history(crew, limit=10, cursor=page["next_cursor"])
        seqs = [m["seq"] for m in page["items"]] + seqs
    assert seqs == list(range(1, 26))


async def test_before_seq_and_after_seq_still_pick_a_page_by_hand(crew: Crew) -> None:
    await seed.messages(crew.database, crew.room_id, mia(crew), 30)
    below = await history(crew, limit=5, before_seq=11)
    assert [m["seq"] for m in below["items"]] == [6, 7, 8, 9, 10]
    above = await history(crew, limit=5, after_seq=27)
    assert ([m["seq"] for m in above["items"]], above["next_cursor"]) == ([28, 29, 30], None)
    oldest = await history(crew, limit=5, before_seq=4)
    assert ([m["seq"] for m in oldest["items"]], oldest["next_cursor"]) == ([1, 2, 3], None)


async def test_a_malformed_cursor_is_invalid_and_says_so(crew: Crew) -> None:
    await seed.messages(crew.database, crew.room_id, mia(crew), 3)
    for cursor in ("201", "garbage!", "W10"):  # an old seq, not base64, an empty list
        response = await crew.call(
            "GET", f"/rooms/{crew.room_id}/messages", params={"cursor": cursor}
        )
        assert (response.status, await error_code(response)) == (400, "invalid"), cursor
        error = (await response.json())["error"]
        assert error["message"] == "cursor: not a cursor of this list"
        assert error["details"]["fields"] == {"cursor": "invalid cursor"}


async def test_a_cursor_beside_before_seq_or_after_seq_is_invalid(crew: Crew) -> None:
    await seed.messages(crew.database, crew.room_id, mia(crew), 5)
    cursor = (await history(crew, limit=2))["next_cursor"]
    for position in ({"before_seq": "3"}, {"after_seq": "0"}):
        response = await crew.call(
            "GET", f"/rooms/{crew.room_id}/messages", params={"cursor": cursor, **position}
        )
        assert (response.status, await error_code(response)) == (400, "invalid"), position
        assert (await response.json())["error"]["details"]["fields"].keys() == {"cursor"}


async def test_history_items_are_message_events_including_the_assistants(crew: Crew) -> None:
    answer = NewMessage(
        crew.room_id,
        Author.assistant(),
        "hello!",
        reply_to=1,
        generation=Generation("gen-1", "gemini-2.5-flash", "stop", 5, 2),
    )
    async with crew.database.sessions.begin() as session:
        await messages.append_many(
            session, [NewMessage(crew.room_id, mia(crew), "hi", "c-1"), answer]
        )
    items = (await history(crew))["items"]
    assert [(m["type"], m["seq"], m["author"]["kind"]) for m in items] == [
        ("message", 1, "user"),
        ("message", 2, "assistant"),
    ]
    assert items[0]["author"] == {"id": crew.member.id, "name": "Mia Member", "kind": "user"}
    assert (items[0]["room"], items[0]["client_id"], items[0]["body"]) == (
        crew.room_id,
        "c-1",
        "hi",
    )
    assert (items[1]["author"]["id"], items[1]["gen"], items[1]["reply_to"]) == (None, "gen-1", 1)
    room = await (await crew.call("GET", f"/rooms/{crew.room_id}")).json()
    assert room["last_seq"] == 2


async def test_history_parameters_out_of_range_are_invalid(crew: Crew) -> None:
    for params in (
        {"limit": "0"},
        {"limit": "201"},
        {"before_seq": "-1"},
        {"after_seq": "x"},
        {"before_seq": "1.5"},
        {"after_seq": "1" * 30},
    ):
        response = await crew.call("GET", f"/rooms/{crew.room_id}/messages", params=params)
        assert (response.status, await error_code(response)) == (400, "invalid"), params
        assert (await response.json())["error"]["details"]["fields"].keys() == params.keys()
