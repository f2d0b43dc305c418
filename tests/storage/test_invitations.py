"""Invitations in storage: hashed, single-use, expiring, and only for the invited email."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from errors import Conflict, NotFound
from storage import invitations, teams
from storage.models import Invitation
from tests import seed


@pytest.fixture
async def crew(database):
    async with database.sessions.begin() as session:
        ada = await seed.user(session)
        crew = await seed.team(session, ada)
        bob = await seed.user(session, "Bob")
    return ada, crew, bob


async def invite(database, crew, email, role="member", ttl=invitations.INVITATION_TTL):
    ada, membership, _ = crew
    async with database.sessions.begin() as session:
        return await invitations.create(
            session,
            team_id=membership.team.id,
            email=email,
            role=role,
            invited_by=ada.id,
            ttl=ttl,
        )


async def accept(database, token, who):
    async with database.sessions.begin() as session:
        return await invitations.accept(session, token, user_id=who.id, email=who.email)


async def test_the_token_is_stored_only_as_its_hash(database, crew) -> None:
    issued = await invite(database, crew, "Someone@Example.com ")
    async with database.sessions() as session:
        row = await session.scalar(select(Invitation))
    assert row is not None
    assert issued.token not in (row.token_hash, row.email)
    assert row.token_hash == invitations.hash_token(issued.token)
    assert issued.email == row.email == "someone@example.com"
    assert timedelta(days=6, hours=23) < issued.expires_at - row.created_at <= timedelta(days=7)


async def test_the_invited_user_joins_with_the_role_once(database, crew) -> None:
    _, membership, bob = crew
    issued = await invite(database, crew, bob.email.upper(), role="admin")
    joined = await accept(database, issued.token, bob)
    assert (joined.team.id, joined.user_id, joined.role) == (membership.team.id, bob.id, "admin")
    with pytest.raises(NotFound):
        await accept(database, issued.token, bob)


async def test_an_expired_or_unknown_token_is_not_found(database, crew) -> None:
    _, _, bob = crew
    issued = await invite(database, crew, bob.email, ttl=timedelta(seconds=-1))
    for token in (issued.token, "unknown", "x" * 10_000):
        with pytest.raises(NotFound):
            await accept(database, token, bob)


async def test_someone_else_cannot_use_the_token_and_it_stays_valid(database, crew) -> None:
    _, membership, bob = crew
    async with database.sessions.begin() as session:
        eve = await seed.user(session, "Eve")
    issued = await invite(database, crew, bob.email)
    with pytest.raises(NotFound):
        await accept(database, issued.token, eve)
    joined = await accept(database, issued.token, bob)
    assert joined.team.id == membership.team.id


async def test_accepting_as_a_member_already_is_a_conflict_and_spends_nothing(
    database, crew
) -> None:
    _, membership, bob = crew
    issued = await invite(database, crew, bob.email)
    async with database.sessions.begin() as session:
        await seed.member(session, membership.team.id, bob, "member")
    with pytest.raises(Conflict):
        await accept(database, issued.token, bob)
    async with database.sessions() as session:
        row = await session.scalar(select(Invitation))
    assert row is not None
    assert row.accepted_at is None


async def test_inviting_a_member_or_into_a_personal_team_is_a_conflict(database, crew) -> None:
    ada, _, bob = crew
    with pytest.raises(Conflict):
        await invite(database, crew, ada.email)
    async with database.sessions() as session:
        [personal] = (await teams.list_for_user(session, bob.id, limit=5)).items
    with pytest.raises(Conflict):
        async with database.sessions.begin() as session:
            await invitations.create(
                session, team_id=personal.team.id, email=ada.email, role="member", invited_by=bob.id
            )
