"""Teams and members in storage: owners are never all gone, lists page by join order."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from errors import Conflict, Invalid
from storage import teams
from storage.db import Database
from storage.models import Room, TeamMember
from tests import seed


async def test_a_new_team_has_its_creator_as_owner(database) -> None:
    async with database.sessions.begin() as session:
        ada = await seed.user(session)
        crew = await teams.create(session, name="Crew", owner_id=ada.id)
    async with database.sessions() as session:
        found = await teams.membership(session, crew.team.id, ada.id)
    assert found == crew
    assert (found.role, found.team.name, found.team.personal) == ("owner", "Crew", False)


async def test_a_stranger_has_no_membership(database) -> None:
    async with database.sessions.begin() as session:
        ada, bob = await seed.user(session), await seed.user(session, "Bob")
        crew = await seed.team(session, ada)
    async with database.sessions() as session:
        assert await teams.membership(session, crew.team.id, bob.id) is None
        assert await teams.membership(session, "not-a-team", ada.id) is None


async def test_a_users_teams_page_in_join_order_across_a_boundary(database) -> None:
    async with database.sessions.begin() as session:
        ada = await seed.user(session)
    for n in range(5):
        async with database.sessions.begin() as session:
            await seed.team(session, ada, f"team {n}")
    names, cursor, pages = [], None, 0
    while True:
        async with database.sessions() as session:
            page = await teams.list_for_user(session, ada.id, limit=2, cursor=cursor)
        names += [m.team.name for m in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert names == ["Ada's team", "team 0", "team 1", "team 2", "team 3", "team 4"]
    assert pages == 3


@pytest.mark.parametrize("cursor", ["garbage", "W10", "WyJ4IiwgInkiXQ", "!" * 600])
async def test_a_forged_cursor_is_invalid(database, cursor) -> None:
    async with database.sessions.begin() as session:
        ada = await seed.user(session)
    async with database.sessions() as session:
        with pytest.raises(Invalid):
            await teams.list_for_user(session, ada.id, limit=2, cursor=cursor)
        with pytest.raises(Invalid):
            await teams.list_members(session, "any", limit=2, cursor=cursor)


async def test_members_page_in_join_order(database) -> None:
    async with database.sessions.begin() as session:
        ada = await seed.user(session)
        crew = await seed.team(session, ada)
    for name in ("Bob", "Cy", "Di"):
        async with database.sessions.begin() as session:
            await seed.member(session, crew.team.id, await seed.user(session, name), "member")
    async with database.sessions() as session:
        first = await teams.list_members(session, crew.team.id, limit=3)
        rest = await teams.list_members(session, crew.team.id, limit=3, cursor=first.next_cursor)
    assert [m.name for m in first.items] == ["Ada", "Bob", "Cy"]
    assert ([m.name for m in rest.items], rest.next_cursor) == (["Di"], None)
    assert first.items[0].to_json()["user"] == {"id": ada.id, "email": ada.email, "name": "Ada"}


async def change_role(database: Database, team_id: str, user_id: str, role) -> teams.Member:
    async with database.sessions.begin() as session:
        await teams.lock_member(session, team_id, user_id)
        return await teams.set_role(session, team_id, user_id, role)


async def leave(database: Database, team_id: str, user_id: str) -> None:
    async with database.sessions.begin() as session:
        await teams.lock_member(session, team_id, user_id)
        await teams.remove_member(session, team_id, user_id)


async def test_the_last_owner_can_neither_be_demoted_nor_leave(database) -> None:
    async with database.sessions.begin() as session:
        ada = await seed.user(session)
        crew = await seed.team(session, ada)
    with pytest.raises(Conflict):
        await change_role(database, crew.team.id, ada.id, "admin")
    with pytest.raises(Conflict):
        await leave(database, crew.team.id, ada.id)
    async with database.sessions() as session:
        still = await teams.membership(session, crew.team.id, ada.id)
    assert still is not None
    assert still.role == "owner"


async def test_one_of_two_owners_may_step_down(database) -> None:
    async with database.sessions.begin() as session:
        ada, bob = await seed.user(session), await seed.user(session, "Bob")
        crew = await seed.team(session, ada)
        await seed.member(session, crew.team.id, bob, "owner")
    demoted = await change_role(database, crew.team.id, ada.id, "member")
    assert demoted.role == "member"
    await leave(database, crew.team.id, ada.id)
    with pytest.raises(Conflict):
        await leave(database, crew.team.id, bob.id)


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(
    database, database_url
) -> None:
    async with database.sessions.begin() as session:
        ada, bob = await seed.user(session), await seed.user(session, "Bob")
        crew = await seed.team(session, ada)
        await seed.member(session, crew.team.id, bob, "owner")
    wide = Database(database_url, pool_size=4)
    try:
        outcomes = await asyncio.gather(
            change_role(wide, crew.team.id, ada.id, "member"),
            change_role(wide, crew.team.id, bob.id, "member"),
            return_exceptions=True,
        )
    finally:
        await wide.close()
    assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "Member"]
    async with database.sessions() as session:
        owners = await session.scalar(
            select(func.count()).select_from(TeamMember).where(TeamMember.role == "owner")
        )
    assert owners == 3  # the one left in Crew, and Ada's and Bob's personal teams


async def test_a_personal_team_takes_no_second_member_and_cannot_be_deleted(database) -> None:
    async with database.sessions.begin() as session:
        ada, bob = await seed.user(session), await seed.user(session, "Bob")
    async with database.sessions() as session:
        [personal] = (await teams.list_for_user(session, ada.id, limit=10)).items
    with pytest.raises(Conflict):
        async with database.sessions.begin() as session:
            await teams.add_member(session, personal.team.id, bob.id, "member")
    with pytest.raises(Conflict):
        async with database.sessions.begin() as session:
            await teams.delete_team(session, personal.team.id)


async def test_adding_a_member_twice_is_a_conflict(database) -> None:
    async with database.sessions.begin() as session:
        ada, bob = await seed.user(session), await seed.user(session, "Bob")
        crew = await seed.team(session, ada)
        await seed.member(session, crew.team.id, bob, "member")
    with pytest.raises(Conflict):
        async with database.sessions.begin() as session:
            await teams.add_member(session, crew.team.id, bob.id, "admin")


async def test_deleting_a_team_deletes_its_rooms_and_memberships(database) -> None:
    async with database.sessions.begin() as session:
        ada = await seed.user(session)
        crew = await seed.team(session, ada)
        await seed.room(session, crew.team.id, ada)
    async with database.sessions.begin() as session:
        await teams.delete_team(session, crew.team.id)
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Room)) == 0
        assert await teams.membership(session, crew.team.id, ada.id) is None


def test_roles_rank_owner_over_admin_over_member() -> None:
    assert teams.role_at_least("owner", "admin")
    assert teams.role_at_least("admin", "admin")
    assert not teams.role_at_least("member", "admin")
    assert not teams.role_at_least("admin", "owner")
