"""Room events as they travel: the client's JSON encoded once, with a small routing header.

On the bus an event is `b"<seq> <kind> <gen> <origin>\\n" + frame`: the header carries
what a RoomActor needs to order, merge and route the event (the `seq` of stored events,
the generation of `ai.*` events, the user a `typing` event comes from) without parsing
the frame, which every local member then receives byte for byte.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import orjson

_NONE = b"-"


class EventKind(enum.StrEnum):
    """The `type` of every frame the server sends (docs/protocol.md, "Server events")."""

    MESSAGE = "message"
    PRESENCE = "presence"
    TYPING = "typing"
    LEFT = "left"
    AI_START = "ai.start"
    AI_DELTA = "ai.delta"
    AI_END = "ai.end"
    AI_ERROR = "ai.error"
    AI_BEAT = "ai.beat"  # between instances only: members never get it
    # Direct replies to one session.
    READY = "ready"
    JOINED = "joined"
    ACK = "ack"
    PONG = "pong"
    ERROR = "error"

    @property
    def is_ai(self) -> bool:
        """An event of a generation (`ai.*`), which carries its `gen`."""
        return self.value.startswith("ai.")


@dataclass(frozen=True, slots=True)
class RoomEvent:
    """One event of a room: `seq` for stored ones, `frame` is what clients receive."""

    kind: EventKind
    frame: bytes
    seq: int | None = None
    gen: str | None = None
    origin: str | None = None  # the user an event comes from, for "everyone but them"
    # A whole text so far (`ai.delta` with `full`), given to one member and never merged
    # with other deltas; not on the bus.
    full: bool = False

    @classmethod
    def of(cls, payload: dict[str, Any], *, origin: str | None = None) -> RoomEvent:
        """Encode `payload` (an event of docs/protocol.md) once."""
        kind = EventKind(payload["type"])
        seq = payload.get("seq") if kind in STORED_KINDS else None
        return cls(kind, orjson.dumps(payload), seq, payload.get("gen"), origin)

    def pack(self) -> bytes:
        seq = b"%d" % self.seq if self.seq is not None else _NONE
        gen = self.gen.encode() if self.gen else _NONE
        origin = self.origin.encode() if self.origin else _NONE
        return b" ".join((seq, self.kind.encode(), gen, origin)) + b"\n" + self.frame

    @classmethod
    def unpack(cls, data: bytes) -> RoomEvent:
        """Inverse of `pack`. Raises ValueError on a malformed header or an unknown kind."""
        header, _, frame = data.partition(b"\n")
        seq, kind, gen, origin = header.split(b" ")
        return cls(
            kind=EventKind(kind.decode()),
            frame=frame,
            seq=None if seq == _NONE else int(seq),
            gen=None if gen == _NONE else gen.decode(),
            origin=None if origin == _NONE else origin.decode(),
        )


#: Kinds that are stored and carry the room's `seq`.
STORED_KINDS = frozenset({EventKind.MESSAGE})


def frame(payload: dict[str, Any]) -> bytes:
    """A direct reply (ack, joined, error, ...) encoded for one session."""
    return orjson.dumps(payload)


def error_frame(code: str, message: str, re: Any = None, **about: Any) -> bytes:
    """An `error` frame; `about` adds what it concerns (a refused answer's `room` and `seq`)."""
    payload: dict[str, Any] = {"type": EventKind.ERROR, "code": code, "message": message}
    if re is not None:
        payload["re"] = re
    payload.update(about)
    return orjson.dumps(payload)
