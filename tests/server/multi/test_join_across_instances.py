"""A join across instances: the member list names every instance's users, and the access
an instance keeps in memory never outlives a change made through another one."""

from __future__ import annotations

from typing import Any

from storage.db import Database
from tests.server.ws.helpers import connect, join, receive, shared_room
from tests.server.ws.membership import answer_to, remove, set_role


async def presence_of(ws: Any, user_id: str) -> str:
    """The state in the next `presence` event about `user_id` (the socket's own skipped)."""
    while True:
        event = await receive(ws, "presence")
        if event["user"]["id"] == user_id:
            return str(event["state"])


def ids(joined: dict[str, object]) -> set[str]:
    members = joined["members"]
    assert isinstance(members, list)
    return {member["id"] for member in members}


async def test_joined_names_the_members_on_the_other_instance_and_forgets_those_gone(
    instances, database: Database
) -> None:
    a, b = await instances(2)
    setup = await shared_room(a.client(), database, 3)
    alice, bob, carol = setup.accounts
    bob_ws = await connect(b.client(), bob)
    assert ids(await join(bob_ws, setup.room_id)) == {bob.id}

    alice_ws = await connect(a.client(), alice)
    assert ids(await join(alice_ws, setup.room_id)) == {alice.id, bob.id}
    assert await presence_of(bob_ws, alice.id) == "online", b.log_tail()

    # B's room has heard it: a join there lists Alice, connected to A only.
    carol_ws = await connect(b.client(), carol)
    assert ids(await join(carol_ws, setup.room_id)) == {alice.id, bob.id, carol.id}

    await alice_ws.close()
    assert await presence_of(bob_ws, alice.id) == "offline"
    again = await connect(b.client(), carol)
    assert ids(await join(again, setup.room_id)) == {bob.id, carol.id}


async def test_a_member_removed_on_a_is_refused_a_join_on_b_that_b_had_granted(
    instances, database: Database
) -> None:
    a, b = await instances(2)
    setup = await shared_room(a.client(), database, 2)
    owner, carol = setup.accounts
    joined_ws, idle_ws = await connect(b.client(), carol), await connect(b.client(), carol)
    await join(joined_ws, setup.room_id)  # B now knows Carol may enter
    await set_role(a.client(), setup.team_id, carol, "admin", by=owner)
    assert (await join(idle_ws, setup.room_id))["room"] == setup.room_id  # still may

    await remove(a.client(), setup.team_id, carol, by=owner)

    assert (await receive(joined_ws, "left"))["reason"] == "removed", b.log_tail()
    refused = await answer_to(idle_ws, {"type": "join", "room": setup.room_id, "id": "j"})
    assert refused["code"] == "not_found"
    fresh = await connect(b.client(), carol)
    refused = await answer_to(fresh, {"type": "join", "room": setup.room_id, "id": "j"})
    assert refused["code"] == "not_found"


async def test_a_room_deleted_on_a_is_refused_a_join_on_b(instances, database: Database) -> None:
    a, b = await instances(2)
    setup = await shared_room(a.client(), database, 2)
    owner, carol = setup.accounts
    watcher, other = await connect(b.client(), carol), await connect(b.client(), carol)
    await join(watcher, setup.room_id)

    deleted = await a.client().delete(f"/api/v1/rooms/{setup.room_id}", headers=owner.headers)
    assert deleted.status == 204

    assert (await receive(watcher, "left"))["reason"] == "deleted", b.log_tail()
    refused = await answer_to(other, {"type": "join", "room": setup.room_id, "id": "j"})
    assert refused["code"] == "not_found"
