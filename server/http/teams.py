"""Teams, members and invitations: /api/v1/teams/*, /api/v1/invitations/*.

Handlers parse, ask the access guard (server/authz.py), delegate to storage and answer.
"""

from __future__ import annotations

import dataclasses
import logging

from aiohttp import web

from server import authz, control
from server.auth.bodies import Email, Name
from server.auth.guard import CURRENT_USER, require_user
from server.http import shapes
from server.http.json import Body, json_response, parse_body
from server.http.operation import answers
from server.http.paging import CURSOR, LIMIT, cursor_param, limit_param, page_json
from server.state import CACHE, DATABASE, OUTBOX, SETTINGS
from storage import invitations, rooms, teams
from storage.invitations import IssuedInvitation
from storage.room_lists import RoomListCache
from storage.teams import Membership, Role

logger = logging.getLogger(__name__)

PREFIX = "/api/v1"


class NewTeam(Body):
    name: Name


class TeamChange(Body):
    name: Name | None = None


class RoleChange(Body):
    role: Role


class NewInvitation(Body):
    email: Email
    role: Role = "member"


@answers(200, shapes.TeamPage, params=(LIMIT, CURSOR))
@require_user
async def list_teams(request: web.Request) -> web.Response:
    """The caller's teams, each with the caller's role, in the order they joined."""
    limit, cursor = limit_param(request), cursor_param(request)
    async with request.app[DATABASE].sessions() as session:
        page = await teams.list_for_user(
            session, request[CURRENT_USER].id, limit=limit, cursor=cursor
        )
    return json_response(page_json(page))


@answers(201, shapes.Team)
@require_user
async def create_team(request: web.Request) -> web.Response:
    """Create a team; the caller is its owner."""
    body = await parse_body(request, NewTeam)
    async with request.app[DATABASE].sessions.begin() as session:
        membership = await teams.create(session, name=body.name, owner_id=request[CURRENT_USER].id)
    return json_response(membership.to_json(), status=201)


@answers(200, shapes.Team)
async def get_team(request: web.Request) -> web.Response:
    """A team the caller belongs to, with the caller's role."""
    membership = await authz.team_access(request, request.match_info["team_id"], at_least="member")
    return json_response(membership.to_json())


@answers(200, shapes.Team, errors=(403,))
async def change_team(request: web.Request) -> web.Response:
    """Rename (owners and admins)."""
    membership = await authz.team_access(request, request.match_info["team_id"], at_least="admin")
    body = await parse_body(request, TeamChange)
    if body.name is not None:
        async with request.app[DATABASE].sessions.begin() as session:
            await teams.rename(session, membership.team.id, body.name)
        team = dataclasses.replace(membership.team, name=body.name)
        membership = dataclasses.replace(membership, team=team)
    return json_response(membership.to_json())


@answers(204, errors=(403, 409))
async def delete_team(request: web.Request) -> web.Response:
    """Delete a team with its rooms and messages (owners only; not a personal team: 409)."""
    membership = await authz.team_access(request, request.match_info["team_id"], at_least="owner")
    async with request.app[DATABASE].sessions.begin() as session:
        gone = [room.id for room in await rooms.list_for_team(session, membership.team.id)]
        await teams.delete_team(session, membership.team.id)
    await RoomListCache(request.app[CACHE]).invalidate(membership.team.id)
    for room_id in gone:
        await control.room_deleted(request.app, room_id)
    return web.Response(status=204)


@answers(200, shapes.MemberPage, params=(LIMIT, CURSOR))
async def list_members(request: web.Request) -> web.Response:
    """The team's members and their roles, in the order they joined."""
    membership = await authz.team_access(request, request.match_info["team_id"], at_least="member")
    limit, cursor = limit_param(request), cursor_param(request)
    async with request.app[DATABASE].sessions() as session:
        page = await teams.list_members(session, membership.team.id, limit=limit, cursor=cursor)
    return json_response(page_json(page))


@answers(200, shapes.Member, errors=(403, 409))
async def change_member(request: web.Request) -> web.Response:
    """Change a member's role, within the rules of `authz.check_role_change`."""
    actor = await authz.team_access(request, request.match_info["team_id"], at_least="admin")
    user_id = authz.known_id(request.match_info["user_id"], "member")
    body = await parse_body(request, RoleChange)
    async with request.app[DATABASE].sessions.begin() as session:
        target = await teams.lock_member(session, actor.team.id, user_id)
        authz.check_role_change(actor, target, body.role)
        member = await teams.set_role(session, actor.team.id, user_id, body.role)
    await control.member_changed(request.app, actor.team.id, user_id)
    return json_response(member.to_json())


@answers(204, errors=(403, 409))
async def remove_member(request: web.Request) -> web.Response:
    """Remove a member, or leave (a member removing themselves)."""
    actor = await authz.team_access(request, request.match_info["team_id"], at_least="member")
    user_id = authz.known_id(request.match_info["user_id"], "member")
    async with request.app[DATABASE].sessions.begin() as session:
        target = await teams.lock_member(session, actor.team.id, user_id)
        authz.check_removal(actor, target)
        await teams.remove_member(session, actor.team.id, user_id)
    await control.member_removed(request.app, actor.team.id, user_id)
    return web.Response(status=204)


@answers(201, shapes.Invitation, errors=(403, 409))
async def invite(request: web.Request) -> web.Response:
    """Invite an email address (owners and admins); the token goes to the inviter and by mail."""
    actor = await authz.team_access(request, request.match_info["team_id"], at_least="admin")
    body = await parse_body(request, NewInvitation)
    authz.check_grant(actor.role, body.role)
    async with request.app[DATABASE].sessions.begin() as session:
        issued = await invitations.create(
            session,
            team_id=actor.team.id,
            email=body.email,
            role=body.role,
            invited_by=actor.user_id,
        )
    await _mail_invitation(request, actor, issued)
    return json_response(issued.to_json(), status=201)


async def _mail_invitation(
    request: web.Request, actor: Membership, issued: IssuedInvitation
) -> None:
    inviter = request[CURRENT_USER].name
    link = f"{request.app[SETTINGS].public_url}/invitations/{issued.token}"
    text = (
        f"{inviter} invited you to join the team {actor.team.name!r} on Roomcast "
        f"as {issued.role}.\n\nAccept the invitation: {link}\n"
        f"(signed in, POST {PREFIX}/invitations/{issued.token}/accept)\n\n"
        "It can be used once and expires in 7 days."
    )
    await request.app[OUTBOX].send_email(issued.email, "Your invitation to Roomcast", text)
    logger.info("invitation %s to team %s mailed", issued.id, actor.team.id)


@answers(200, shapes.Team, errors=(409,))
@require_user
async def accept_invitation(request: web.Request) -> web.Response:
    """Join the team; the token must be live and addressed to the caller's email.

    An invitation for another email answers 404 `not_found`, like an unknown token.
    """
    user = request[CURRENT_USER]
    async with request.app[DATABASE].sessions.begin() as session:
        membership = await invitations.accept(
            session, request.match_info["token"], user_id=user.id, email=user.email
        )
    return json_response(membership.to_json())


def setup(app: web.Application) -> None:
    router = app.router
    router.add_get(f"{PREFIX}/teams", list_teams)
    router.add_post(f"{PREFIX}/teams", create_team)
    router.add_get(f"{PREFIX}/teams/{{team_id}}", get_team)
    router.add_patch(f"{PREFIX}/teams/{{team_id}}", change_team)
    router.add_delete(f"{PREFIX}/teams/{{team_id}}", delete_team)
    router.add_get(f"{PREFIX}/teams/{{team_id}}/members", list_members)
    router.add_patch(f"{PREFIX}/teams/{{team_id}}/members/{{user_id}}", change_member)
    router.add_delete(f"{PREFIX}/teams/{{team_id}}/members/{{user_id}}", remove_member)
    router.add_post(f"{PREFIX}/teams/{{team_id}}/invitations", invite)
    router.add_post(f"{PREFIX}/invitations/{{token}}/accept", accept_invitation)
