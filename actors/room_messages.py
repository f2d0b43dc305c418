"""What a RoomActor is told: the members it keeps, and every message it handles.

Sessions, the hub and the room's own tasks (the committer, the gap timer, a generation)
build these; the room handles them one at a time in `RoomActor.on_receive`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from actors.actor import reject, resolve
from actors.assistant import AssistantConfig, AssistantObserver, NoObserver, Quotas
from actors.events import RoomEvent
from actors.llm import LLM
from actors.outbound import OutboundQueue
from actors.ports import UserRef
from errors import RoomcastError
from storage.bus import Bus
from storage.messages import Appended, NewMessage
from storage.redis import REDIS_DOWN
from storage.rooms import RoomRecord

logger = logging.getLogger(__name__)


@dataclass(eq=False, slots=True)
class Member:
    """A local session in the room: who it is and where its frames go."""

    session_id: str
    user: UserRef
    outbound: OutboundQueue
    on_overflow: Callable[[], None] = field(default=lambda: None)


@dataclass(frozen=True, slots=True)
class Enter:
    member: Member
    since: int | None
    re: Any
    reply: asyncio.Future[int]


class LeftReason(enum.StrEnum):
    """Why a room sends a member `left` unasked (docs/protocol.md, `left`)."""

    DELETED = "deleted"  # the room, or its team, was deleted
    REMOVED = "removed"  # the user is no longer in the room's team (removed, or left it)


@dataclass(frozen=True, slots=True)
class Exit:
    """A session leaves; with a `reason`, the room tells it `left` after its last event.

    `reply`, when given, is resolved once the room has let the member go (and announced
    the user offline if that was their last session here): a closing session keeps its
    outbound queue open until then.
    """

    session_id: str
    reason: LeftReason | None = None
    reply: asyncio.Future[None] | None = None


@dataclass(frozen=True, slots=True)
class Post:
    """A message to store; `reply` is answered once it is stored (the sender's ack)."""

    message: NewMessage
    reply: asyncio.Future[Appended]
    ai: bool | None = None
    session_id: str | None = None  # the sender's session, told if the assistant refuses
    re: Any = None


@dataclass(frozen=True, slots=True)
class Committed:
    """The committer's word on a batch of posts: each one's outcome, in order.

    The room answers the posts (the acks) and decides the prompts on its own task.
    `unpublished` are the batch's events the bus refused: this instance's members get
    them at once, the other instances when the bus takes them.
    """

    posts: Sequence[Post]
    outcomes: Sequence[Appended | RoomcastError]
    unpublished: Sequence[RoomEvent] = ()

    def answer(self) -> list[tuple[Post, Appended]]:
        """Ack the stored posts and refuse the others; returns the newly stored ones."""
        fresh = []
        for post, outcome in zip(self.posts, self.outcomes, strict=True):
            if isinstance(outcome, Appended):
                resolve(post.reply, outcome)
                if not outcome.duplicate:
                    fresh.append((post, outcome))
            else:
                reject(post.reply, outcome)
        return fresh


@dataclass(frozen=True, slots=True)
class CancelGeneration:
    gen_id: str
    user_id: str
    may_cancel_any: bool  # team owners and admins may stop anyone's generation
    reply: asyncio.Future[None]


@dataclass(frozen=True, slots=True)
class GenerationDone:
    """A generation's task ended (whichever way): the next prompt may run."""

    gen_id: str


@dataclass(frozen=True, slots=True)
class Tick:
    """Periodic: refresh presence, heartbeat our generation, watch others' generations.

    `settings` is the room as the database had it a moment ago, read by the hub for every
    live room at once (None when that read failed): the room picks up a changed mode or
    system prompt the control stream may have missed, and catches up on what it missed.
    `read_at` is the loop time that read began.
    """

    settings: RoomRecord | None = None
    read_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Changed:
    """The room's settings changed (on any instance): reload them now."""


@dataclass(frozen=True, slots=True)
class Deleted:
    """The room was deleted (on any instance): tell the members, then stop."""


@dataclass(frozen=True, slots=True)
class AssistantDeps:
    """What a room needs to answer: the model, the quotas, the limits."""

    llm: LLM
    quotas: Quotas
    config: AssistantConfig = AssistantConfig()
    observer: AssistantObserver = NoObserver()


@dataclass(frozen=True, slots=True)
class UserTyping:
    """A member's user is typing: the room publishes it to everyone else.

    Not `actors.requests.Typing`, the client's request, which names a room; this names
    the user, for the room that request was for.
    """

    user: UserRef


@dataclass(frozen=True, slots=True)
class FromBus:
    """An event that arrived on the room's topic, from this instance or another."""

    event: RoomEvent


@dataclass(frozen=True, slots=True)
class FillGap:
    pass


RoomMessage = (
    Enter
    | Exit
    | Post
    | UserTyping
    | FromBus
    | FillGap
    | Committed
    | CancelGeneration
    | GenerationDone
    | Tick
    | Changed
    | Deleted
)


#: A test-only hook called with every message before it is handled; raising crashes the room.
FaultHook = Callable[[str, RoomMessage], None]


def topic(room_id: str) -> str:
    return f"room:{room_id}"


async def publish(bus: Bus, room_id: str, event: RoomEvent) -> None:
    """Put an event that is not stored (typing, presence, `ai.*`) on the room's topic.

    Best effort while Redis is unreachable: its loss costs a frame, never a stored
    message.
    """
    try:
        await bus.publish(topic(room_id), event.pack())
    except REDIS_DOWN as exc:  # nothing to undo: its loss costs a frame
        logger.warning("room %s: could not publish %s: %r", room_id, event.kind, exc)
