"""A test actor that records what it handles, crashes on demand and can be held mid-message."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from actors import Actor, resolve


@dataclass(frozen=True, slots=True)
class Add:
    value: int


@dataclass(frozen=True, slots=True)
class Get:
    reply: asyncio.Future[list[int]]


@dataclass(frozen=True, slots=True)
class Crash:
    """Fault injection: `on_receive` raises on this message."""

    reply: asyncio.Future[None] | None = None


@dataclass(frozen=True, slots=True)
class Hold:
    """Keeps the actor busy inside `on_receive` until `release` is set."""

    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True, slots=True)
class StopSelf:
    """Asks the actor to stop itself from inside `on_receive`."""


Message = Add | Get | Crash | Hold | StopSelf


class Recorder(Actor[Message]):
    """Appends every `Add` to `handled`, which outlives restarts so order can be checked.

    `events` (shared between actors if given) records lifecycle hooks by actor name.
    """

    def __init__(
        self, name: str = "recorder", *, mailbox_size: int = 16, events: list[str] | None = None
    ) -> None:
        super().__init__(name, mailbox_size=mailbox_size)
        self.handled: list[int] = []
        self.events = events if events is not None else []
        self.busy = False
        self.run_handled = 0

    async def on_start(self) -> None:
        self.run_handled = 0  # per-run state, re-initialised by every (re)start
        self.events.append(f"start {self.name}")

    async def on_receive(self, message: Message) -> None:
        self.run_handled += 1
        match message:
            case Add(value=value):
                self.handled.append(value)
            case Get(reply=reply):
                resolve(reply, list(self.handled))
            case Crash():
                raise RuntimeError(f"{self.name} crashed on purpose")
            case Hold(entered=entered, release=release):
                entered.set()
                await release.wait()
            case StopSelf():
                await self.stop()

    async def on_stop(self) -> None:
        self.events.append(f"stop {self.name}")

    def is_idle(self) -> bool:
        return not self.busy and super().is_idle()


async def hold(actor: Recorder) -> asyncio.Event:
    """Make `actor` busy in `on_receive`; set the returned event to let it go on."""
    message = Hold()
    actor.tell(message)
    await asyncio.wait_for(message.entered.wait(), 1.0)
    return message.release


class OnDemandRecorder(Recorder):
    """The same, with a task only while messages wait."""

    on_demand = True
