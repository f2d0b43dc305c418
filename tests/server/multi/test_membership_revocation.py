"""Losing a team on one instance ends live access to its rooms on every instance at once.

Carol is connected to instance B and joined to the team's room; the change is made
through instance A, so only the control stream can tell B.
"""

from __future__ import annotations

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


async def test_a_member_removed_on_a_loses_the_room_on_b_at_once(
    instances, database: Database
) -> None:
    a, b = await instances(2)
    setup = await shared_room(a.client(), database, 3)
    owner, carol, dave = setup.accounts
    owner_ws = await connect(a.client(), owner)
    carol_ws, dave_ws = await connect(b.client(), carol), await connect(b.client(), dave)
    for ws in (owner_ws, carol_ws, dave_ws):
        await join(ws, setup.room_id)

    await remove(a.client(), setup.team_id, carol, by=owner)

    left = await receive(carol_ws, "left")
    assert left == {"type": "left", "room": setup.room_id, "reason": "removed"}, b.log_tail()
    assert await refused_in_room(carol_ws, setup.room_id) == ["forbidden"] * 3
    rejoin = await answer_to(carol_ws, {"type": "join", "room": setup.room_id, "id": "j"})
    assert rejoin["code"] == "not_found"

    await delivered_to_others_first(owner_ws, dave_ws, setup.room_id, "after carol")
    assert room_messages(await frames_before_pong(carol_ws), setup.room_id) == []
    acked = await answer_to(
        dave_ws, {"type": "send", "room": setup.room_id, "body": "dave still in", "id": 1}
    )
    assert acked["type"] == "ack"
    bodies = [m["body"] for m in room_messages(await frames_before_pong(owner_ws), setup.room_id)]
    assert "dave still in" in bodies
    history = await b.client().get(f"/api/v1/rooms/{setup.room_id}/messages", headers=owner.headers)
    assert [m["body"] for m in (await history.json())["items"]] == ["after carol", "dave still in"]


async def test_a_member_who_leaves_through_a_loses_the_room_on_b(
    instances, database: Database
) -> None:
    a, b = await instances(2)
    setup = await shared_room(a.client(), database, 2)
    owner, carol = setup.accounts
    on_a, on_b = await connect(a.client(), carol), await connect(b.client(), carol)
    for ws in (on_a, on_b):
        await join(ws, setup.room_id)

    await remove(a.client(), setup.team_id, carol, by=carol)

    for ws, instance in ((on_a, a), (on_b, b)):
        left = await receive(ws, "left")
        assert left == {"type": "left", "room": setup.room_id, "reason": "removed"}, (
            instance.log_tail()
        )
        assert await refused_in_room(ws, setup.room_id) == ["forbidden"] * 3


async def test_a_team_deleted_on_a_takes_every_members_rooms_on_b(
    instances, database: Database
) -> None:
    a, b = await instances(2)
    setup = await shared_room(a.client(), database, 3)
    owner, carol, dave = setup.accounts
    async with database.sessions.begin() as session:
        other = await seed.room(session, setup.team_id, owner, "other", assistant="off")
    owner_ws = await connect(a.client(), owner)
    carol_ws, dave_ws = await connect(b.client(), carol), await connect(b.client(), dave)
    for ws in (owner_ws, carol_ws, dave_ws):
        await join(ws, setup.room_id)
    await join(carol_ws, other.id)

    deleted = await a.client().delete(f"/api/v1/teams/{setup.team_id}", headers=owner.headers)
    assert deleted.status == 204

    expected = {
        owner_ws: {setup.room_id},
        carol_ws: {setup.room_id, other.id},
        dave_ws: {setup.room_id},
    }
    for ws, room_ids in expected.items():
        lefts = [await receive(ws, "left") for _ in room_ids]
        assert {left["room"] for left in lefts} == room_ids, b.log_tail()
        assert {left["reason"] for left in lefts} == {"deleted"}
        for room_id in room_ids:
            rejoin = await answer_to(ws, {"type": "join", "room": room_id, "id": "j"})
            assert rejoin["code"] == "not_found"
            sent = await answer_to(
                ws, {"type": "send", "room": room_id, "body": "anyone?", "id": "s"}
            )
            assert sent["type"] == "error"


async def test_a_demotion_on_a_takes_the_right_to_cancel_on_b(
    instances, database: Database
) -> None:
    a, b = await instances(2, AI_OFFLINE_DELAY=0.3)
    setup = await shared_room(a.client(), database, 3, assistant="mention")
    owner, carol, dave = setup.accounts
    await set_role(a.client(), setup.team_id, carol, "admin", by=owner)
    carol_ws, dave_ws = await connect(b.client(), carol), await connect(b.client(), dave)
    await join(carol_ws, setup.room_id)
    await join(dave_ws, setup.room_id)
    await dave_ws.send_json({"type": "send", "room": setup.room_id, "body": "hm?", "ai": True})
    gen = (await receive(carol_ws, "ai.start"))["gen"]
    cancel = {"type": "cancel", "room": setup.room_id, "gen": gen}

    await set_role(a.client(), setup.team_id, carol, "member", by=owner)

    assert (await answer_to(carol_ws, {**cancel, "id": 1}))["code"] == "forbidden"
    await set_role(a.client(), setup.team_id, carol, "admin", by=owner)
    assert (await answer_to(carol_ws, {**cancel, "id": 2}))["type"] == "ack"
    assert (await receive(dave_ws, "ai.end"))["finish"] == "cancelled"
