"""The one access guard for teams and rooms, and the rules of who may change whose role.

Every team and room handler asks `team_access` or `room_access` before anything else:

- a caller who is not a member gets 404 `not_found`, exactly as for a team or room that
  does not exist, or an id that is not even well formed: existence is not revealed;
- a member below the role the action needs gets 403 `forbidden`.

Roles rank owner > admin > member. What each may do to another member's role:

- an owner may give anyone any role, including making or unmaking owners;
- an admin may make members admins and admins members (themselves included), but may
  neither touch an owner nor make one;
- a member changes no roles.

Removal follows the same ranks (an owner removes anyone, an admin removes admins and
members, a member nobody), and anyone may remove themselves, i.e. leave. Storage adds the
rule that no change may leave a team without an owner (409 `conflict`).
"""

from __future__ import annotations

import re

from aiohttp import web

from errors import Forbidden, NotFound
from server.auth.guard import CURRENT_USER, authenticate
from server.state import DATABASE
from storage import rooms, teams
from storage.rooms import RoomAccess
from storage.teams import Member, Membership, Role, role_at_least
from storage.users import UserRecord

_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def known_id(raw: str, what: str) -> str:
    """`raw` when it is shaped like our ids; otherwise 404, as for any unknown id."""
    if not _ID.match(raw):
        raise NotFound(f"no such {what}")
    return raw


async def caller(request: web.Request) -> UserRecord:
    """The authenticated caller (authenticating now when no decorator did). Raises 401."""
    user = request.get(CURRENT_USER)
    return user if user is not None else await authenticate(request)


async def team_access(request: web.Request, team_id: str, *, at_least: Role) -> Membership:
    """The caller's membership of the team, which must hold `at_least`.

    Raises:
        Unauthorized: no valid access token.
        NotFound: no such team, or the caller is not a member of it.
        Forbidden: the caller's role is below `at_least`.
    """
    user = await caller(request)
    known_id(team_id, "team")
    async with request.app[DATABASE].reads() as session:
        membership = await teams.membership(session, team_id, user.id)
    if membership is None:
        raise NotFound("no such team")
    _require(membership.role, at_least)
    return membership


async def room_access(request: web.Request, room_id: str, *, at_least: Role) -> RoomAccess:
    """The room, with the caller's role in its team, which must hold `at_least`.

    Raises:
        Unauthorized: no valid access token.
        NotFound: no such room, or the caller is not a member of its team.
        Forbidden: the caller's role is below `at_least`.
    """
    user = await caller(request)
    known_id(room_id, "room")
    async with request.app[DATABASE].reads() as session:
        access = await rooms.access(session, room_id, user.id)
    if access is None:
        raise NotFound("no such room")
    _require(access.role, at_least)
    return access


def _require(role: Role, at_least: Role) -> None:
    if not role_at_least(role, at_least):
        raise Forbidden(f"this needs the {at_least} role in the team")


def check_grant(actor: Role, role: Role) -> None:
    """Only an owner hands out the owner role (by role change or by invitation)."""
    if role == "owner" and actor != "owner":
        raise Forbidden("only an owner can make an owner")


def check_role_change(actor: Membership, target: Member, role: Role) -> None:
    """May `actor` give `target` the role `role`? Raises Forbidden when not."""
    _require(actor.role, "admin")
    if target.role == "owner" and actor.role != "owner":
        raise Forbidden("only an owner can change an owner's role")
    check_grant(actor.role, role)


def check_removal(actor: Membership, target: Member) -> None:
    """May `actor` remove `target` from the team? Anyone may leave. Raises Forbidden."""
    if target.user_id == actor.user_id:
        return
    _require(actor.role, "admin")
    if target.role == "owner" and actor.role != "owner":
        raise Forbidden("only an owner can remove an owner")
