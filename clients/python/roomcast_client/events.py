"""Server events as frozen dataclasses, and the parser from wire frames."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class State(StrEnum):
    """The client's connection state."""

    CONNECTING = "connecting"  # the first connection is being made
    CONNECTED = "connected"  # authenticated; rooms are joined again
    RECONNECTING = "reconnecting"  # the connection was lost; waiting or dialling again
    CLOSED = "closed"  # stopped for good (by `close()` or a fatal close code)


@dataclass(frozen=True)
class User:
    id: str
    name: str


@dataclass(frozen=True)
class Author:
    id: str | None  # None for the assistant
    name: str
    kind: str  # "user" or "assistant"


@dataclass(frozen=True)
class Usage:
    input_tokens: int | None
    output_tokens: int | None


@dataclass(frozen=True)
class Message:
    """A stored message; delivered once per `seq`, in `seq` order."""

    room: str
    seq: int
    id: str
    client_id: str | None
    author: Author
    body: str
    ts: str
    reply_to: int | None = None
    gen: str | None = None
    model: str | None = None
    finish: str | None = None
    usage: Usage | None = None


@dataclass(frozen=True)
class AiStart:
    room: str
    gen: str
    reply_to: int
    model: str


@dataclass(frozen=True)
class AiDelta:
    """Part of an answer. With `full`, `text` is the whole answer so far: replace, not append."""

    room: str
    gen: str
    i: int
    text: str
    full: bool = False


@dataclass(frozen=True)
class AiEnd:
    room: str
    gen: str
    seq: int
    finish: str
    usage: Usage | None


@dataclass(frozen=True)
class AiError:
    """The generation failed: discard its deltas."""

    room: str
    gen: str
    code: str
    message: str


@dataclass(frozen=True)
class Presence:
    room: str
    user: User
    state: str  # "online" or "offline"


@dataclass(frozen=True)
class Typing:
    room: str
    user: User


@dataclass(frozen=True)
class Left:
    """The client is out of `room`: `reason` is None after `leave()`, else the server's."""

    room: str
    reason: str | None


@dataclass(frozen=True)
class AnswerRefused:
    """Your message `seq` is stored, but the assistant will not answer it (`code`:
    `quota_exceeded`, or `rate_limited` when its queue in the room is full)."""

    room: str
    seq: int
    code: str
    message: str


@dataclass(frozen=True)
class StateChanged:
    """The connection state changed (delivered to the `on_state` callbacks)."""

    state: State
    close_code: int | None = None


Event = Message | AiStart | AiDelta | AiEnd | AiError | AnswerRefused | Presence | Typing | Left


def _user(raw: Any) -> User:
    return User(id=str(raw.get("id")), name=str(raw.get("name", "")))


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    return Usage(raw.get("input_tokens"), raw.get("output_tokens"))


def parse_message(frame: dict[str, Any]) -> Message:
    author = frame.get("author") or {}
    return Message(
        room=frame["room"],
        seq=int(frame["seq"]),
        id=str(frame.get("id", "")),
        client_id=frame.get("client_id"),
        author=Author(author.get("id"), str(author.get("name", "")), str(author.get("kind", ""))),
        body=str(frame.get("body", "")),
        ts=str(frame.get("ts", "")),
        reply_to=frame.get("reply_to"),
        gen=frame.get("gen"),
        model=frame.get("model"),
        finish=frame.get("finish"),
        usage=_usage(frame.get("usage")),
    )


def parse_event(frame: dict[str, Any]) -> Event | None:
    """The event a server frame carries, or None for replies and unknown types."""
    kind = frame.get("type")
    room = frame.get("room")
    if not isinstance(room, str):
        return None
    if kind == "message":
        return parse_message(frame)
    if kind == "ai.start":
        return AiStart(room, frame["gen"], int(frame.get("reply_to", 0)), str(frame.get("model")))
    if kind == "ai.delta":
        return AiDelta(room, frame["gen"], int(frame["i"]), frame["text"], bool(frame.get("full")))
    if kind == "ai.end":
        usage = _usage(frame.get("usage"))
        return AiEnd(room, frame["gen"], int(frame["seq"]), frame["finish"], usage)
    if kind == "ai.error":
        return AiError(room, frame["gen"], frame["code"], str(frame.get("message", "")))
    if kind == "presence":
        return Presence(room, _user(frame.get("user") or {}), str(frame.get("state")))
    if kind == "typing":
        return Typing(room, _user(frame.get("user") or {}))
    if kind == "left":
        return Left(room, frame.get("reason"))
    if kind == "error" and isinstance(frame.get("seq"), int):
        return AnswerRefused(room, frame["seq"], str(frame.get("code")), str(frame.get("message")))
    return None
