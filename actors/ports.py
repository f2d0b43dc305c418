"""What the realtime actors need from the outside, as protocols: storage and room access.

The server wires real implementations (storage on SQLAlchemy) in; tests may wire others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from storage.messages import Appended, NewMessage, StoredMessage
from storage.rooms import RoomAccess, RoomRecord


@dataclass(frozen=True, slots=True)
class UserRef:
    """Who a session belongs to, as members see them."""

    id: str
    name: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True, slots=True)
class Verified:
    """What a verified access token vouches for: its user, its expiry (unix seconds), and
    the sign-in it belongs to (the refresh family), whose revocation closes the session."""

    user: UserRef
    expires_at: float
    family_id: str


class MessageStore(Protocol):
    """Durable message history: the source of truth for `seq` (storage/messages.py)."""

    async def append_many(self, messages: Sequence[NewMessage]) -> list[Appended]:
        """Store in one transaction, each with its room's next `seq`, in the given order."""
        ...

    async def events_between(self, room_id: str, after: int, upto: int) -> list[dict[str, Any]]:
        """The stored events with `after < seq <= upto`, ascending."""
        ...

    async def room(self, room_id: str) -> RoomRecord | None:
        """The room's settings and newest `seq`; None when it does not exist."""
        ...

    async def rooms(self, room_ids: Sequence[str]) -> dict[str, RoomRecord]:
        """`room` for many rooms at once, by id; the missing ones are left out."""
        ...

    async def recent(self, room_id: str, upto: int, limit: int) -> list[StoredMessage]:
        """The newest `limit` messages with `seq <= upto`, ascending (the model's context)."""
        ...


class RoomDirectory(Protocol):
    """Who may enter which room."""

    async def access(self, user_id: str, room_id: str) -> RoomAccess | None:
        """The user's access to the room, or None when it does not exist for them; may be
        answered from memory (what `forget_*` were told is never answered from memory)."""
        ...

    async def access_now(self, user_id: str, room_id: str) -> RoomAccess | None:
        """`access` as the database has it at this moment."""
        ...

    def forget_member(self, team_id: str, user_id: str) -> None:
        """The user's membership of the team changed: removed, left, or another role."""
        ...

    def forget_room(self, room_id: str) -> None:
        """The room's settings changed, or it was deleted."""
        ...
