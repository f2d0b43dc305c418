"""The Teams section of docs/protocol.md, row by row, with its errors."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from storage.models import Team
from tests.accounts import signup
from tests.server.teams.conftest import API, Crew, error_code, row_counts

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


async def test_creating_a_team_makes_the_caller_its_owner(client) -> None:
    ada = await signup(client, name="Ada")
    response = await client.post(f"{API}/teams", json={"name": "  Crew  "}, headers=ada.headers)
    assert response.status == 201
    team = await response.json()
    assert RFC3339_UTC.match(team.pop("created_at"))
    assert team == {"id": team["id"], "name": "Crew", "personal": False, "role": "owner"}
    listed = await (await client.get(f"{API}/teams", headers=ada.headers)).json()
    assert [(t["name"], t["role"], t["personal"]) for t in listed["items"]] == [
        ("Ada's team", "owner", True),
        ("Crew", "owner", False),
    ]
    assert listed["next_cursor"] is None


async def test_the_team_list_pages_with_a_cursor_and_shows_each_role(crew: Crew) -> None:
    await crew.new_team("Side")
    seen, cursor = [], None
    for _ in range(3):
        query = {"limit": "2"} if cursor is None else {"limit": "2", "cursor": cursor}
        page = await (await crew.call("GET", "/teams", "admin", params=query)).json()
        seen += [(team["name"], team["role"]) for team in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [("Adam Admin's team", "owner"), ("Crew", "admin"), ("Side", "admin")]


@pytest.mark.parametrize("limit", ["0", "201", "-1", "abc", "1e2", "", "9" * 40])
async def test_a_limit_outside_1_to_200_is_invalid(crew: Crew, limit) -> None:
    for path in ("/teams", f"/teams/{crew.team_id}/members", f"/teams/{crew.team_id}/rooms"):
        response = await crew.call("GET", path, params={"limit": limit})
        assert response.status == 400, path
        error = (await response.json())["error"]
        assert (error["code"], list(error["details"]["fields"])) == ("invalid", ["limit"])


async def test_a_forged_cursor_is_invalid(crew: Crew) -> None:
    for path in ("/teams", f"/teams/{crew.team_id}/members", f"/teams/{crew.team_id}/rooms"):
        response = await crew.call("GET", path, params={"cursor": "bm90IGEgY3Vyc29y"})
        assert (response.status, await error_code(response)) == (400, "invalid"), path


async def test_a_team_is_shown_to_its_members_with_their_role(crew: Crew) -> None:
    response = await crew.call("GET", f"/teams/{crew.team_id}", "member")
    assert response.status == 200
    team = await response.json()
    assert (team["id"], team["name"], team["role"]) == (crew.team_id, "Crew", "member")


async def test_an_admin_renames_the_team(crew: Crew) -> None:
    response = await crew.call("PATCH", f"/teams/{crew.team_id}", "admin", json={"name": "Dev"})
    assert response.status == 200
    assert (await response.json())["name"] == "Dev"
    shown = await (await crew.call("GET", f"/teams/{crew.team_id}", "member")).json()
    assert shown["name"] == "Dev"
    unchanged = await crew.call("PATCH", f"/teams/{crew.team_id}", "admin", json={})
    assert (await unchanged.json())["name"] == "Dev"


async def test_the_owner_deletes_the_team_with_its_rooms(crew: Crew) -> None:
    response = await crew.call("DELETE", f"/teams/{crew.team_id}")
    assert response.status == 204
    for path in (f"/teams/{crew.team_id}", f"/rooms/{crew.room_id}"):
        gone = await crew.call("GET", path)
        assert (gone.status, await error_code(gone)) == (404, "not_found")
    counts = await row_counts(crew.database)
    assert counts["rooms"] == 0


async def test_a_personal_team_cannot_be_deleted(crew: Crew) -> None:
    async with crew.database.sessions() as session:
        personal = await session.scalar(select(Team.id).where(Team.name == "Olive Owner's team"))
    response = await crew.call("DELETE", f"/teams/{personal}")
    assert (response.status, await error_code(response)) == (409, "conflict")


async def test_members_are_listed_with_user_role_and_join_time(crew: Crew) -> None:
    response = await crew.call("GET", f"/teams/{crew.team_id}/members", "member")
    assert response.status == 200
    page = await response.json()
    assert page["next_cursor"] is None
    assert [(m["user"]["name"], m["role"]) for m in page["items"]] == [
        ("Olive Owner", "owner"),
        ("Adam Admin", "admin"),
        ("Mia Member", "member"),
    ]
    first = page["items"][0]
    assert first["user"] == {"id": crew.owner.id, "email": crew.owner.email, "name": "Olive Owner"}
    assert RFC3339_UTC.match(first["joined_at"])
    second = await crew.call("GET", f"/teams/{crew.team_id}/members", params={"limit": "2"})
    rest = await crew.call(
        "GET",
        f"/teams/{crew.team_id}/members",
        params={"limit": "2", "cursor": (await second.json())["next_cursor"]},
    )
    assert [m["user"]["name"] for m in (await rest.json())["items"]] == ["Mia Member"]


async def set_role(crew: Crew, who: str, user_id: str, role: str):
    return await crew.call(
        "PATCH", f"/teams/{crew.team_id}/members/{user_id}", who, json={"role": role}
    )


async def test_owners_and_admins_change_roles_within_their_rank(crew: Crew) -> None:
    promoted = await set_role(crew, "admin", crew.member.id, "admin")
    assert promoted.status == 200
    assert (await promoted.json())["role"] == "admin"
    demoted = await set_role(crew, "admin", crew.member.id, "member")
    assert (await demoted.json())["role"] == "member"
    for target, role in ((crew.member.id, "owner"), (crew.owner.id, "admin")):
        refused = await set_role(crew, "admin", target, role)
        assert (refused.status, await error_code(refused)) == (403, "forbidden")
    crowned = await set_role(crew, "owner", crew.admin.id, "owner")
    assert (await crowned.json())["role"] == "owner"


async def test_the_last_owner_can_be_neither_demoted_nor_removed(crew: Crew) -> None:
    demoted = await set_role(crew, "owner", crew.owner.id, "admin")
    assert (demoted.status, await error_code(demoted)) == (409, "conflict")
    left = await crew.call("DELETE", f"/teams/{crew.team_id}/members/{crew.owner.id}")
    assert (left.status, await error_code(left)) == (409, "conflict")
    await set_role(crew, "owner", crew.admin.id, "owner")
    stepped_down = await set_role(crew, "owner", crew.owner.id, "member")
    assert (await stepped_down.json())["role"] == "member"


async def test_members_leave_and_are_removed_within_the_ranks(crew: Crew) -> None:
    other = await crew.new_member()
    refused = await crew.call("DELETE", f"/teams/{crew.team_id}/members/{other}", "member")
    assert (refused.status, await error_code(refused)) == (403, "forbidden")
    owner = await crew.call("DELETE", f"/teams/{crew.team_id}/members/{crew.owner.id}", "admin")
    assert (owner.status, await error_code(owner)) == (403, "forbidden")
    left = await crew.call("DELETE", f"/teams/{crew.team_id}/members/{crew.member.id}", "member")
    assert left.status == 204
    after = await crew.call("GET", f"/teams/{crew.team_id}", "member")
    assert (after.status, await error_code(after)) == (404, "not_found")
    removed = await crew.call("DELETE", f"/teams/{crew.team_id}/members/{crew.admin.id}")
    assert removed.status == 204


async def test_changing_or_removing_a_non_member_is_not_found(crew: Crew) -> None:
    for user_id in (crew.outsider.id, "00000000-0000-0000-0000-000000000000", "nobody"):
        path = f"/teams/{crew.team_id}/members/{user_id}"
        changed = await crew.call("PATCH", path, json={"role": "admin"})
        removed = await crew.call("DELETE", path)
        assert [changed.status, removed.status] == [404, 404], user_id
