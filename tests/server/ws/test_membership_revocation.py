"""Live access follows team membership on one instance, on the in-process bus: a removed
member's sockets leave the team's rooms at once, and `cancel` follows the current role."""

from __future__ import annotations

import pytest

from storage import teams
from storage.db import Database
from tests import seed
from tests.server.ws.helpers import connect, join, receive, shared_room
from tests.server.ws.membership import (
    answer_to,
    delivered_to_others_first,
    frames_before_pong,
    refused_in_room,
    remove,
    room_messages,
    set_role,
)


@pytest.fixture
async def local_client(make_client):
    """One instance with no Redis: the in-process bus carries the control events."""
    return await make_client(redis_url=None, ai_offline_delay=0.3)


async def test_a_removed_member_leaves_every_room_of_the_team_on_every_socket(
    local_client, database: Database
) -> None:
    setup = await shared_room(local_client, database, 3)
    owner, carol, dave = setup.accounts
    async with database.sessions.begin() as session:
        other = await seed.room(session, setup.team_id, owner, "other", assistant="off")
    owner_ws, dave_ws = await connect(local_client, owner), await connect(local_client, dave)
    phone, laptop = await connect(local_client, carol), await connect(local_client, carol)
    for ws in (owner_ws, dave_ws, phone, laptop):
        await join(ws, setup.room_id)
    await join(phone, other.id)

    await remove(local_client, setup.team_id, carol, by=owner)

    assert await receive(phone, "left") == {
        "type": "left",
        "room": setup.room_id,
        "reason": "removed",
    }
    assert await receive(phone, "left") == {"type": "left", "room": other.id, "reason": "removed"}
    assert await receive(laptop, "left") == {
        "type": "left",
        "room": setup.room_id,
        "reason": "removed",
    }
    for ws in (phone, laptop):
        assert await refused_in_room(ws, setup.room_id) == ["forbidden"] * 3
    assert await refused_in_room(phone, other.id) == ["forbidden"] * 3
    rejoin = await answer_to(phone, {"type": "join", "room": setup.room_id, "id": "j"})
    assert rejoin["code"] == "not_found"

    await delivered_to_others_first(owner_ws, dave_ws, setup.room_id, "after carol")
    for ws in (phone, laptop):
        assert room_messages(await frames_before_pong(ws), setup.room_id) == []
    acked = await answer_to(
        dave_ws, {"type": "send", "room": setup.room_id, "body": "still in", "id": 1}
    )
    assert acked["type"] == "ack"
    history = await local_client.get(
        f"/api/v1/rooms/{setup.room_id}/messages", headers=owner.headers
    )
    assert [m["body"] for m in (await history.json())["items"]] == ["after carol", "still in"]


async def test_a_member_who_leaves_loses_the_rooms_on_their_other_sockets(
    local_client, database: Database
) -> None:
    setup = await shared_room(local_client, database, 2)
    owner, carol = setup.accounts
    owner_ws, carol_ws = await connect(local_client, owner), await connect(local_client, carol)
    await join(owner_ws, setup.room_id)
    await join(carol_ws, setup.room_id)

    await remove(local_client, setup.team_id, carol, by=carol)

    left = await receive(carol_ws, "left")
    assert left == {"type": "left", "room": setup.room_id, "reason": "removed"}
    assert await refused_in_room(carol_ws, setup.room_id) == ["forbidden"] * 3
    offline = await receive(owner_ws, "presence")
    while offline["state"] != "offline":
        offline = await receive(owner_ws, "presence")
    assert offline["user"]["id"] == carol.id


async def test_cancel_follows_the_role_carol_holds_now_not_at_join(
    local_client, database: Database
) -> None:
    setup = await shared_room(local_client, database, 3, assistant="mention")
    owner, carol, dave = setup.accounts
    await set_role(local_client, setup.team_id, carol, "admin", by=owner)
    carol_ws, dave_ws = await connect(local_client, carol), await connect(local_client, dave)
    await join(carol_ws, setup.room_id)
    await join(dave_ws, setup.room_id)
    await dave_ws.send_json({"type": "send", "room": setup.room_id, "body": "hm?", "ai": True})
    gen = (await receive(carol_ws, "ai.start"))["gen"]
    cancel = {"type": "cancel", "room": setup.room_id, "gen": gen}

    await set_role(local_client, setup.team_id, carol, "member", by=owner)
    assert (await answer_to(carol_ws, {**cancel, "id": 1}))["code"] == "forbidden"

    await set_role(local_client, setup.team_id, carol, "admin", by=owner)
    assert (await answer_to(carol_ws, {**cancel, "id": 2}))["type"] == "ack"
    end = await receive(dave_ws, "ai.end")
    assert end["gen"] == gen and end["finish"] == "cancelled"


async def test_a_reauth_ends_access_that_a_lost_control_event_left_open(
    local_client, database: Database
) -> None:
    setup = await shared_room(local_client, database, 2)
    owner, carol = setup.accounts
    carol_ws = await connect(local_client, carol)
    await join(carol_ws, setup.room_id)
    async with database.sessions.begin() as session:  # as if the announcement never came
        await teams.lock_member(session, setup.team_id, carol.id)
        await teams.remove_member(session, setup.team_id, carol.id)

    await carol_ws.send_json({"type": "auth", "token": carol.access_token, "id": "again"})

    assert (await receive(carol_ws, "ready"))["re"] == "again"
    left = await receive(carol_ws, "left")
    assert left == {"type": "left", "room": setup.room_id, "reason": "removed"}
    assert await refused_in_room(carol_ws, setup.room_id) == ["forbidden"] * 3
