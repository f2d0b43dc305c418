"""A message as it is stored and as it is sent: its author, its generation, its event.

The records `storage.messages` takes and returns (and re-exports).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from storage.timestamps import rfc3339

AuthorKind = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class Author:
    """Who wrote a message: a user (with an id) or the assistant (id None)."""

    id: str | None
    name: str
    kind: AuthorKind = "user"

    @classmethod
    def user(cls, user_id: str, name: str) -> Author:
        return cls(id=user_id, name=name, kind="user")

    @classmethod
    def assistant(cls, name: str = "Assistant") -> Author:
        return cls(id=None, name=name, kind="assistant")

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class Generation:
    """What an assistant message records about the generation that wrote it."""

    gen_id: str
    model: str
    finish: str  # stop | length | safety | cancelled | error
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append: one item of a (group-committed) batch."""

    room_id: str
    author: Author
    body: str
    client_id: str | None = None
    reply_to: int | None = None
    generation: Generation | None = None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as stored, with its room `seq`."""

    id: str
    room_id: str
    seq: int
    author: Author
    body: str
    client_id: str | None
    reply_to: int | None
    generation: Generation | None
    created_at: datetime

    def to_event(self) -> dict[str, Any]:
        """docs/protocol.md's websocket `message` event, which is also a history item.

        Assistant answers add `gen`, `model`, `finish` and `usage` (named as in `ai.end`),
        and a reply carries `reply_to`; a user's plain message has exactly the documented
        fields.
        """
        event: dict[str, Any] = {
            "type": "message",
            "room": self.room_id,
            "seq": self.seq,
            "id": self.id,
            "client_id": self.client_id,
            "author": self.author.to_json(),
            "body": self.body,
            "ts": rfc3339(self.created_at),
        }
        if self.reply_to is not None:
            event["reply_to"] = self.reply_to
        if self.generation is not None:
            gen = self.generation
            event["gen"], event["model"], event["finish"] = gen.gen_id, gen.model, gen.finish
            event["usage"] = {"input_tokens": gen.input_tokens, "output_tokens": gen.output_tokens}
        return event


@dataclass(frozen=True, slots=True)
class Appended:
    """The outcome of one append: the stored message, and whether it was a retry of it."""

    message: StoredMessage
    duplicate: bool


@dataclass(frozen=True, slots=True)
class MessagePage:
    """Messages in ascending `seq`, and whether more lie beyond in the direction paged."""

    items: list[StoredMessage]
    more: bool
