"""Invitations over REST: created by owners and admins, mailed, accepted once by the invitee."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from storage import outbox, teams
from storage.models import Invitation, Team
from storage.types import utcnow
from tests.accounts import signup
from tests.server.teams.conftest import Crew, error_code, row_counts


async def invite(crew: Crew, email: str, role: str = "member", who: str = "owner"):
    return await crew.call(
        "POST", f"/teams/{crew.team_id}/invitations", who, json={"email": email, "role": role}
    )


async def test_an_invitation_returns_its_token_once_and_mails_it(crew: Crew) -> None:
    response = await invite(crew, "Newcomer@Example.com", "admin", who="admin")
    assert response.status == 201
    body = await response.json()
    assert set(body) == {"id", "team_id", "email", "role", "token", "expires_at"}
    assert (body["team_id"], body["email"], body["role"]) == (
        crew.team_id,
        "newcomer@example.com",
        "admin",
    )
    assert body["expires_at"].endswith("Z")
    async with crew.database.sessions() as session:
        [mail] = await outbox.list_for(session, "newcomer@example.com")
    assert body["token"] in mail.body
    assert "Crew" in mail.body


async def test_the_invitee_joins_with_the_invited_role_and_only_once(crew: Crew) -> None:
    newcomer = await signup(crew.client, name="Nina")
    token = (await (await invite(crew, newcomer.email, "admin")).json())["token"]
    headers = newcomer.headers
    accepted = await crew.client.post(f"/api/v1/invitations/{token}/accept", headers=headers)
    assert accepted.status == 200
    team = await accepted.json()
    assert (team["id"], team["name"], team["role"]) == (crew.team_id, "Crew", "admin")
    again = await crew.client.post(f"/api/v1/invitations/{token}/accept", headers=headers)
    assert (again.status, await error_code(again)) == (404, "not_found")
    rooms = await crew.client.get(f"/api/v1/teams/{crew.team_id}/rooms", headers=headers)
    assert rooms.status == 200


async def test_expired_unknown_and_foreign_tokens_are_not_found(crew: Crew) -> None:
    newcomer = await signup(crew.client, name="Nina")
    token = (await (await invite(crew, newcomer.email)).json())["token"]
    foreign = await crew.call("POST", f"/invitations/{token}/accept", "outsider")
    assert (foreign.status, await error_code(foreign)) == (404, "not_found")
    async with crew.database.sessions.begin() as session:
        await session.execute(update(Invitation).values(expires_at=utcnow() - timedelta(seconds=1)))
    for attempt in (token, "no-such-token", "x" * 4000):
        response = await crew.client.post(
            f"/api/v1/invitations/{attempt}/accept", headers=newcomer.headers
        )
        assert (response.status, await error_code(response)) == (404, "not_found"), attempt
    assert (await row_counts(crew.database))["team_members"] == 3 + 5  # crew + personal teams


async def test_accepting_while_a_member_already_is_a_conflict(crew: Crew) -> None:
    token = (await (await invite(crew, crew.outsider.email)).json())["token"]
    async with crew.database.sessions.begin() as session:
        await teams.add_member(session, crew.team_id, crew.outsider.id, "member")
    response = await crew.call("POST", f"/invitations/{token}/accept", "outsider")
    assert (response.status, await error_code(response)) == (409, "conflict")


async def test_inviting_a_member_is_a_conflict(crew: Crew) -> None:
    response = await invite(crew, crew.member.email)
    assert (response.status, await error_code(response)) == (409, "conflict")


async def test_a_personal_team_takes_no_invitations(crew: Crew) -> None:
    async with crew.database.sessions() as session:
        personal = await session.scalar(select(Team.id).where(Team.name == "Olive Owner's team"))
    response = await crew.call(
        "POST", f"/teams/{personal}/invitations", json={"email": "friend@example.com"}
    )
    assert (response.status, await error_code(response)) == (409, "conflict")


async def test_only_an_owner_invites_an_owner(crew: Crew) -> None:
    by_admin = await invite(crew, "boss@example.com", "owner", who="admin")
    assert (by_admin.status, await error_code(by_admin)) == (403, "forbidden")
    by_owner = await invite(crew, "boss@example.com", "owner")
    assert by_owner.status == 201
    by_member = await invite(crew, "pal@example.com", "member", who="member")
    assert (by_member.status, await error_code(by_member)) == (403, "forbidden")
    assert (await row_counts(crew.database))["invitations"] == 1
