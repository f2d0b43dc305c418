"""Client frames (docs/protocol.md, WebSocket) decoded into typed requests.

Decoding is pure: the websocket layer hands in a frame's text (`decode_frame`), then the
parsed JSON object, and gets a request or an `Invalid` naming what is wrong; the
connection stays open either way. Every string that may reach the database is checked
here, against what both PostgreSQL and SQLite can hold.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from errors import Invalid
from storage.messages import MAX_CLIENT_ID
from storage.types import unstorable

MAX_BODY = 4000
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

# An escaped UTF-16 surrogate, the only thing orjson refuses in JSON that is well formed.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def decode_frame(text: str) -> Any:
    """The JSON value of a text frame.

    orjson refuses a string holding an unpaired surrogate escape (`"\\ud83d"`, which a
    browser's `JSON.stringify` writes for a string cut inside an emoji), and with it the
    whole frame. Such a frame is JSON all the same, so it is decoded again by the standard
    library, as strictly otherwise; `parse_request` then refuses the field by name, and
    the connection stays open.

    Raises:
        ValueError: the text is not JSON.
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if _SURROGATE_ESCAPE.search(text) is None:
            raise ValueError("frame is not JSON") from exc
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ValueError("frame is not JSON") from exc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def request_id(data: dict[str, Any]) -> ReqId:
    """The client's `id` if it is a string (without NUL or unpaired surrogates) or an
    integer of sane size, else None: the reply then has no `re`."""
    value = data.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and abs(value) < 2**53:
        return value
    if isinstance(value, str) and len(value) <= MAX_ID and unstorable(value) is None:
        return value  # an unpaired surrogate could not even be echoed back
    return None


def _text(data: dict[str, Any], name: str, *, limit: int, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise Invalid(f"{name}: must be a string")
    if not value or len(value) > limit:
        raise Invalid(f"{name}: 1 to {limit} characters")
    # Every string of a frame is checked, the ones that are only looked up included: a
    # NUL in a query parameter fails the statement on PostgreSQL as much as in a row.
    reason = unstorable(value)
    if reason is not None:
        raise Invalid(f"{name}: {reason}")
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
