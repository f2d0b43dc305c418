"""Helpers for the tests of live access ending with a team membership (removal, leave,
team deletion) and of rights changing with a role."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.accounts import Account
from tests.server.ws.helpers import receive

MEMBERS = "/api/v1/teams/{team}/members/{user}"


async def remove(client: Any, team_id: str, who: Account, by: Account) -> None:
    """`by` removes `who` from the team (or `who` leaves, when they are the same)."""
    answer = await client.delete(MEMBERS.format(team=team_id, user=who.id), headers=by.headers)
    assert answer.status == 204, await answer.text()


async def set_role(client: Any, team_id: str, who: Account, role: str, by: Account) -> None:
    path = MEMBERS.format(team=team_id, user=who.id)
    answer = await client.patch(path, json={"role": role}, headers=by.headers)
    assert answer.status == 200, await answer.text()


async def answer_to(ws: aiohttp.ClientWebSocketResponse, request: dict[str, Any]) -> dict[str, Any]:
    """The `error` or `ack` that answers `request` (sent with its `id`)."""
    await ws.send_json(request)
    while True:
        frame = await receive(ws)
        if frame["type"] in ("error", "ack") and frame.get("re") == request["id"]:
            return frame


async def refused_in_room(ws: aiohttp.ClientWebSocketResponse, room_id: str) -> list[str]:
    """The error codes of a `send`, a `typing` and a `cancel` to the room, in that order
    (every one of them must be refused: an `ack` fails the test)."""
    requests = [
        {"type": "send", "room": room_id, "body": "still here?", "client_id": "late", "id": "s"},
        {"type": "typing", "room": room_id, "id": "t"},
        {"type": "cancel", "room": room_id, "gen": "any", "id": "c"},
    ]
    codes = []
    for request in requests:
        answer = await answer_to(ws, request)
        assert answer["type"] == "error", answer
        codes.append(answer["code"])
    return codes


async def frames_before_pong(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    """Every frame that arrives before the answer to a `ping` sent now."""
    await ws.send_json({"type": "ping", "id": "sync"})
    frames = []
    while (frame := await receive(ws))["type"] != "pong":
        frames.append(frame)
    return frames


async def delivered_to_others_first(
    sender: aiohttp.ClientWebSocketResponse,
    witness: aiohttp.ClientWebSocketResponse,
    room_id: str,
    body: str,
) -> None:
    """`sender` posts `body` and `witness`, a member, receives it: the room has fanned it
    out, so any other member has it queued before anything queued for them later."""
    await sender.send_json({"type": "send", "room": room_id, "body": body})
    while (frame := await receive(witness, "message"))["body"] != body:
        pass
    assert frame["room"] == room_id


def room_messages(frames: list[dict[str, Any]], room_id: str) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] == "message" and f["room"] == room_id]
