"""Rooms and message history: /api/v1/teams/{team_id}/rooms, /api/v1/rooms/*.

A team's room list is served from the cache (storage/room_lists.py); every handler that
changes a room invalidates it after its commit, so a read right after a change is fresh.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from aiohttp import web
from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from errors import Invalid, NotFound
from server import authz, control
from server.auth.bodies import Name
from server.auth.guard import CURRENT_USER
from server.http import shapes
from server.http.json import Body, json_response, parse_body
from server.http.operation import answers
from server.http.paging import (
    AFTER_SEQ,
    BEFORE_SEQ,
    CURSOR,
    LIMIT,
    cursor_param,
    int_param,
    limit_param,
)
from server.state import CACHE, DATABASE
from storage import history as history_pages
from storage import rooms
from storage.pagination import slice_page
from storage.room_lists import RoomList, RoomListCache
from storage.rooms import MAX_SYSTEM_PROMPT, UNSET, AssistantMode

PREFIX = "/api/v1"


def _check_prompt(text: str) -> str:
    if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n\r" for ch in text):
        raise PydanticCustomError("policy", "must not contain control characters")
    return text


# What _check_prompt refuses (Cc but tab, newline, return), for the OpenAPI document.
_PROMPT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
SystemPrompt = Annotated[
    str,
    Field(max_length=MAX_SYSTEM_PROMPT, json_schema_extra={"pattern": _PROMPT_PATTERN}),
    AfterValidator(_check_prompt),
]


class NewRoom(Body):
    name: Name
    assistant: AssistantMode | None = None
    system_prompt: SystemPrompt | None = None


class RoomChange(Body):
    """Settings to change; `system_prompt: null` clears the prompt, leaving it out keeps it."""

    name: Name | None = None
    assistant: AssistantMode | None = None
    system_prompt: SystemPrompt | None = None


async def _room_list(request: web.Request, team_id: str) -> RoomList:
    async def load() -> RoomList:
        async with request.app[DATABASE].sessions() as session:
            found = await rooms.list_for_team(session, team_id)
        return sorted((room.to_json() for room in found), key=_list_order)

    return await RoomListCache(request.app[CACHE]).get(team_id, load)


def _list_order(room: dict[str, Any]) -> tuple[str, str]:
    return (room["created_at"], room["id"])


@answers(200, shapes.RoomPage, params=(LIMIT, CURSOR))
async def list_rooms(request: web.Request) -> web.Response:
    """The team's rooms, oldest first, from the cache."""
    team_id = request.match_info["team_id"]
    await authz.team_access(request, team_id, at_least="member")
    limit, cursor = limit_param(request), cursor_param(request)
    page = slice_page(await _room_list(request, team_id), _list_order, limit=limit, cursor=cursor)
    return json_response({"items": page.items, "next_cursor": page.next_cursor})


@answers(201, shapes.Room)
async def create_room(request: web.Request) -> web.Response:
    """Any member creates rooms; `assistant` defaults to `auto` in a personal team."""
    membership = await authz.team_access(request, request.match_info["team_id"], at_least="member")
    body = await parse_body(request, NewRoom)
    default: AssistantMode = "auto" if membership.team.personal else "mention"
    async with request.app[DATABASE].sessions.begin() as session:
        room = await rooms.create(
            session,
            team_id=membership.team.id,
            name=body.name,
            assistant=body.assistant or default,
            system_prompt=body.system_prompt,
            created_by=request[CURRENT_USER].id,
        )
    await RoomListCache(request.app[CACHE]).invalidate(room.team_id)
    return json_response(room.to_json(), status=201)


@answers(200, shapes.Room)
async def get_room(request: web.Request) -> web.Response:
    """A room of a team the caller belongs to."""
    access = await authz.room_access(request, request.match_info["room_id"], at_least="member")
    return json_response(access.room.to_json())


@answers(200, shapes.Room, errors=(403,))
async def change_room(request: web.Request) -> web.Response:
    """Rename or change settings (team owners and admins)."""
    access = await authz.room_access(request, request.match_info["room_id"], at_least="admin")
    body = await parse_body(request, RoomChange)
    prompt = body.system_prompt if "system_prompt" in body.model_fields_set else UNSET
    async with request.app[DATABASE].sessions.begin() as session:
        room = await rooms.change(
            session,
            access.room.id,
            name=body.name,
            assistant=body.assistant,
            system_prompt=prompt,
        )
    if room is None:
        raise NotFound("no such room")
    await RoomListCache(request.app[CACHE]).invalidate(room.team_id)
    await control.room_changed(request.app, room.id)
    return json_response(room.to_json())


@answers(204, errors=(403,))
async def delete_room(request: web.Request) -> web.Response:
    """Delete a room and its messages (team owners and admins)."""
    access = await authz.room_access(request, request.match_info["room_id"], at_least="admin")
    async with request.app[DATABASE].sessions.begin() as session:
        await rooms.delete_room(session, access.room.id)
    await RoomListCache(request.app[CACHE]).invalidate(access.room.team_id)
    await control.room_deleted(request.app, access.room.id)
    return web.Response(status=204)


@answers(200, shapes.MessagePage, params=(LIMIT, CURSOR, BEFORE_SEQ, AFTER_SEQ))
async def history(request: web.Request) -> web.Response:
    """Messages in ascending `seq`: just below `before_seq`, just above `after_seq`, or newest.

    `next_cursor` is opaque: passed back alone as `?cursor=` (with any `limit`), it gives
    the next page in the same direction, back by default, forward when the walk began
    with `after_seq`; null when there is nothing more that way.
    """
    access = await authz.room_access(request, request.match_info["room_id"], at_least="member")
    limit = limit_param(request)
    window = _history_window(request)
    async with request.app[DATABASE].sessions() as session:
        page = await history_pages.page(session, access.room.id, window, limit=limit)
    items = [message.to_event() for message in page.items]
    return json_response({"items": items, "next_cursor": page.next_cursor})


def _history_window(request: web.Request) -> history_pages.Window:
    """The window of `?cursor=`, or of `?before_seq=` and `?after_seq=`. Raises Invalid."""
    before, after = int_param(request, "before_seq"), int_param(request, "after_seq")
    cursor = cursor_param(request)
    if cursor is None:
        return history_pages.Window(before_seq=before, after_seq=after)
    if before is not None or after is not None:
        # The cursor carries the window; a second one beside it would be ambiguous.
        reason = "send it without before_seq and after_seq"
        raise Invalid(f"cursor: {reason}", details={"fields": {"cursor": reason}})
    return history_pages.Window.from_cursor(cursor)


def setup(app: web.Application) -> None:
    router = app.router
    router.add_get(f"{PREFIX}/teams/{{team_id}}/rooms", list_rooms)
    router.add_post(f"{PREFIX}/teams/{{team_id}}/rooms", create_room)
    router.add_get(f"{PREFIX}/rooms/{{room_id}}", get_room)
    router.add_patch(f"{PREFIX}/rooms/{{room_id}}", change_room)
    router.add_delete(f"{PREFIX}/rooms/{{room_id}}", delete_room)
    router.add_get(f"{PREFIX}/rooms/{{room_id}}/messages", history)
