"""Client frames (docs/protocol.md, WebSocket) decoded into typed requests.

Decoding is pure: the websocket layer hands in the parsed JSON object and gets a request
or an `Invalid` naming what is wrong; the connection stays open either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from errors import Invalid

MAX_BODY = 4000
MAX_CLIENT_ID = 64
MAX_ID = 64

ReqId = str | int | None


@dataclass(frozen=True, slots=True)
class Auth:
    token: str
    id: ReqId = None


@dataclass(frozen=True, slots=True)
class Join:
    room: str
    since: int | None = None
    id: ReqId = None


@dataclass(frozen=True, slots=True)
class Leave:
    room: str
    id: ReqId = None


@dataclass(frozen=True, slots=True)
class Send:
    room: str
    body: str
    client_id: str | None = None
    ai: bool | None = None
    id: ReqId = None


@dataclass(frozen=True, slots=True)
class Typing:
    room: str
    id: ReqId = None


@dataclass(frozen=True, slots=True)
class Cancel:
    room: str
    gen: str
    id: ReqId = None


@dataclass(frozen=True, slots=True)
class Ping:
    id: ReqId = None


Request = Auth | Join | Leave | Send | Typing | Cancel | Ping


def request_id(data: dict[str, Any]) -> ReqId:
    """The client's `id` if it is a string or integer of sane size, else None."""
    value = data.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and abs(value) < 2**53:
        return value
    if isinstance(value, str) and len(value) <= MAX_ID:
        return value
    return None


def _text(data: dict[str, Any], name: str, *, limit: int, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise Invalid(f"{name}: must be a string")
    if not value or len(value) > limit:
        raise Invalid(f"{name}: 1 to {limit} characters")
    return value


def _room(data: dict[str, Any]) -> str:
    return _text(data, "room", limit=MAX_ID) or ""


def _since(data: dict[str, Any]) -> int | None:
    since = data.get("since")
    if since is None:
        return None
    if isinstance(since, bool) or not isinstance(since, int) or since < 0 or since >= 2**63:
        raise Invalid("since: must be a non-negative integer")
    return since


def _ai(data: dict[str, Any]) -> bool | None:
    ai = data.get("ai")
    if ai is not None and not isinstance(ai, bool):
        raise Invalid("ai: must be a boolean")
    return ai


def _send(data: dict[str, Any], rid: ReqId) -> Send:
    body = _text(data, "body", limit=MAX_BODY) or ""
    if "\x00" in body:
        raise Invalid("body: must not contain NUL characters")
    client_id = _text(data, "client_id", limit=MAX_CLIENT_ID, required=False)
    return Send(_room(data), body, client_id, _ai(data), rid)


def parse_request(data: Any) -> Request:
    """The typed request for a decoded frame.

    Raises:
        Invalid: unknown `type`, or a field missing or of the wrong type.
    """
    if not isinstance(data, dict):
        raise Invalid("frame must be a JSON object")
    rid = request_id(data)
    match data.get("type"):
        case "auth":
            return Auth(_text(data, "token", limit=4096) or "", rid)
        case "join":
            return Join(_room(data), _since(data), rid)
        case "leave":
            return Leave(_room(data), rid)
        case "send":
            return _send(data, rid)
        case "typing":
            return Typing(_room(data), rid)
        case "cancel":
            return Cancel(_room(data), _text(data, "gen", limit=MAX_ID) or "", rid)
        case "ping":
            return Ping(rid)
        case str() as other:
            raise Invalid(f"type: unknown frame type {other[:32]!r}")
        case _:
            raise Invalid("type: must be a string")
