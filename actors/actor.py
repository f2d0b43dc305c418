"""The actor: private state, a bounded mailbox and one task that handles messages in turn.

Others `tell` it (never waits: a full mailbox raises `MailboxFull`) or `ask` it (the
message carries an `asyncio.Future` that the actor answers; the asker waits with a
timeout). A crash in `on_start` or `on_receive` ends the task and goes to the parent
supervisor. The crashed actor still takes messages while it waits: when the supervisor
starts a fresh run of the same object, the mailbox has survived and the messages queued
behind the crash are handled afterwards, in order. When the supervisor gives up (or there
is none, or the actor was stopping), the actor stops instead and every queued message is
rejected with `ActorDead`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from actors.errors import (
    ActorCrashed,
    ActorDead,
    ActorError,
    ActorStopped,
    AskTimeout,
    MailboxFull,
)
from actors.mailbox import Mailbox

logger = logging.getLogger(__name__)

M = TypeVar("M")
R = TypeVar("R")


class ActorState(enum.Enum):
    """Where an actor is in its life; only NEW, RUNNING and CRASHED take messages."""

    NEW = "new"
    RUNNING = "running"
    CRASHED = "crashed"  # the task ended with an error; the parent decides what next
    STOPPING = "stopping"
    STOPPED = "stopped"


class Parent(Protocol):
    """What an actor tells its supervisor; the supervisor owns restart decisions."""

    def child_crashed(self, child: Actor[Any], exc: Exception) -> None: ...

    def child_stopped(self, child: Actor[Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class ActorSnapshot:
    """One node of the admin view of the actor tree (`dataclasses.asdict` makes it JSON)."""

    name: str
    kind: str
    state: str
    mailbox_depth: int | None  # None for a supervisor, which has no mailbox
    mailbox_size: int | None
    restarts: int
    age_seconds: float
    children: tuple[ActorSnapshot, ...] = ()


@dataclass(frozen=True, slots=True)
class _Envelope(Generic[M]):
    """A message and, when it came through `ask`, the future its asker waits on."""

    message: M
    reply: asyncio.Future[Any] | None = None


def resolve(reply: asyncio.Future[R], value: R) -> None:
    """Answer an ask, unless the asker already gave up (timed out or was cancelled)."""
    if not reply.done():
        reply.set_result(value)


def reject(reply: asyncio.Future[Any], error: BaseException) -> None:
    """Fail an ask with `error`, unless the asker already gave up."""
    if not reply.done():
        reply.set_exception(error)


class Actor(Generic[M]):
    """Base class: override `on_start`, `on_receive` and `on_stop`; only the task touches state.

    Args:
        name: unique, human-readable; it is in every log line and error about the actor.
        mailbox_size: how many messages may wait before `tell` raises `MailboxFull`.
    """

    # Slotted (subclasses may add their own): one session actor per connection, so no
    # per-instance dict for each of thousands of idle sessions.
    __slots__ = (
        "name",
        "mailbox_size",
        "restarts",
        "started_at",
        "parent",
        "_inbox",
        "_stop_marker_queued",
        "_state",
        "_task",
        "_starting",
        "_current",
        "_crash",
        "_stopped",
        "_is_stopped",
    )

    #: Run the task only while messages wait. An actor that mostly waits (one per
    #: connection, say) then costs no task, coroutine or future while idle; the next
    #: message starts a fresh task. `on_start` still runs once per run, before its first
    #: message.
    on_demand: ClassVar[bool] = False

    def __init__(self, name: str, *, mailbox_size: int = 1024) -> None:
        if mailbox_size < 1:
            raise ValueError(f"{name}: mailbox_size must be at least 1, got {mailbox_size}")
        self.name = name
        self.mailbox_size = mailbox_size
        self.restarts = 0  # counted by the supervisor that restarts this actor
        self.started_at: float | None = None  # event loop time of the first start
        self.parent: Parent | None = None
        # Unbounded underneath: `_post` enforces `mailbox_size`, and a stop marker always fits.
        self._inbox: Mailbox[_Envelope[M] | None] = Mailbox()
        self._stop_marker_queued = False
        self._state = ActorState.NEW
        self._task: asyncio.Task[None] | None = None
        self._starting = False  # on_start is still due in this run
        self._current: _Envelope[M] | None = None
        self._crash: Exception | None = None
        self._stopped: asyncio.Event | None = None  # made when someone waits: saves memory
        self._is_stopped = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self._state.value}>"

    # Hooks for subclasses.

    async def on_start(self) -> None:
        """(Re)initialise state; runs before the first message of every run, restarts too."""

    async def on_receive(self, message: M) -> None:
        """Handle one message. Raising is a crash: the message is lost, the mailbox kept."""

    async def on_stop(self) -> None:
        """Release what `on_start` took; runs after an orderly stop, not after a crash."""

    def on_rejected(self, message: M, error: ActorError) -> None:
        """Answer a message that will never be handled: queued at a stop without drain, or
        lost in a crash. An `ask`'s future is failed already; override this to fail a
        reply future the message carries itself (told with `tell`), so nobody waits on it
        for ever."""

    def on_stopped(self) -> None:
        """Runs once the actor is STOPPED, however it got there (after `on_stop`, or without
        it after a crash or a cancellation): end what must not outlive the actor."""

    def is_idle(self) -> bool:
        """Whether the registry may passivate this actor; subclasses add their own test."""
        return self._state is ActorState.RUNNING and self._current is None and self._inbox.empty()

    def child_snapshots(self) -> tuple[ActorSnapshot, ...]:
        """Snapshots of the actors this one supervises, for the admin tree."""
        return ()

    # Observing.

    @property
    def state(self) -> ActorState:
        """Where the actor is in its life."""
        return self._state

    @property
    def is_alive(self) -> bool:
        """True while the actor takes messages (it may be waiting for a restart)."""
        return self._state in (ActorState.NEW, ActorState.RUNNING, ActorState.CRASHED)

    @property
    def mailbox_depth(self) -> int:
        """Messages waiting, not counting the one being handled."""
        return self._inbox.qsize() - self._stop_marker_queued

    @property
    def age(self) -> float:
        """Seconds since the first start (restarts do not reset it); 0 before it."""
        if self.started_at is None:
            return 0.0
        return asyncio.get_running_loop().time() - self.started_at

    def snapshot(self) -> ActorSnapshot:
        """The admin view of this actor and its children."""
        return ActorSnapshot(
            name=self.name,
            kind=type(self).__name__,
            state=self._state.value,
            mailbox_depth=self.mailbox_depth,
            mailbox_size=self.mailbox_size,
            restarts=self.restarts,
            age_seconds=round(self.age, 3),
            children=self.child_snapshots(),
        )

    # Messaging.

    def tell(self, message: M) -> None:
        """Enqueue without waiting.

        Raises:
            MailboxFull: the mailbox holds `mailbox_size` messages; the caller decides.
            ActorStopped: the actor is stopping or stopped (`ActorDead` after a crash).
        """
        self._post(_Envelope(message))

    async def ask(self, make_message: Callable[[asyncio.Future[R]], M], timeout: float) -> R:
        """Send the message `make_message(reply)` and wait for the actor to answer `reply`.

        Example: `seq = await room.ask(lambda reply: Post(..., reply=reply), timeout=2.0)`.

        Raises:
            AskTimeout: no answer within `timeout` seconds; `reply` is cancelled.
            MailboxFull, ActorStopped: as `tell`, at once.
            ActorCrashed: the actor crashed while handling this message.
        """
        reply: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._post(_Envelope(make_message(reply), reply))
        try:
            async with asyncio.timeout(timeout):
                # Awaiting the future itself: a timeout or our cancellation cancels it.
                return await reply
        except TimeoutError:
            raise AskTimeout(self.name, timeout) from None

    def _notify_self(self, message: M) -> None:
        """Enqueue one of the actor's own notifications (from a task or timer it started),
        past the mailbox bound: what it reports must not be lost to a full mailbox, and
        the actor made it, so it cannot flood itself.

        Raises:
            ActorStopped: the actor is stopping or stopped (`ActorDead` after a crash);
                then the caller settles what the message would have settled.
        """
        if not self.is_alive:
            raise self._refusal()
        self._inbox.put_nowait(_Envelope(message))
        self._wake()

    def _post(self, envelope: _Envelope[M]) -> None:
        if not self.is_alive:
            raise self._refusal()
        if self._inbox.qsize() >= self.mailbox_size:
            raise MailboxFull(self.name)
        self._inbox.put_nowait(envelope)
        self._wake()

    def _wake(self) -> None:
        """Start the task of an on-demand actor that has a message and no task."""
        if not self.on_demand or self._state not in (ActorState.RUNNING, ActorState.STOPPING):
            return
        if self._task is None or self._task.done():
            self._spawn()

    def _spawn(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name=f"actor {self.name}")

    def _refusal(self) -> ActorStopped:
        if self._crash is None:
            return ActorStopped(self.name)
        error = ActorDead(self.name)
        error.__cause__ = self._crash
        return error

    # Lifecycle.

    def start(self) -> None:
        """Spawn the task: the first run, or a fresh run after a crash (supervisor's call).

        Raises:
            ActorStopped: the actor is stopping or stopped; make a new one instead.
        """
        if self._state is ActorState.RUNNING:
            return
        if not self.is_alive:
            raise self._refusal()
        loop = asyncio.get_running_loop()
        if self.started_at is None:
            self.started_at = loop.time()
        self._state = ActorState.RUNNING
        self._crash = None
        self._starting = True
        if not self.on_demand or not self._inbox.empty():
            self._spawn()

    def stop_nowait(self, drain: bool = True) -> None:
        """Begin stopping and return at once; new messages are refused from now on.

        Args:
            drain: handle the messages already queued first; otherwise they are rejected
                and their asks fail with `ActorStopped`.
        """
        if self._state is ActorState.RUNNING or (self._state is ActorState.STOPPING and not drain):
            self._state = ActorState.STOPPING
            if not drain:
                self._reject_queued()
            if not self._stop_marker_queued:
                self._stop_marker_queued = True
                self._inbox.put_nowait(None)
                self._wake()
        elif self._state in (ActorState.NEW, ActorState.CRASHED):
            self._finish()  # no task is running: nothing can be drained

    async def stop(self, drain: bool = True) -> None:
        """Stop (see `stop_nowait`) and wait until the actor has stopped.

        Called from the actor's own `on_receive`, it only begins the stop: waiting there
        for the task to end would wait for itself.
        """
        self.stop_nowait(drain)
        if asyncio.current_task() is not self._task:
            await self.wait_stopped()

    async def wait_stopped(self) -> None:
        """Wait until the actor has stopped; cancelling the waiter does not touch the actor."""
        if not self._is_stopped:
            if self._stopped is None:
                self._stopped = asyncio.Event()
            await self._stopped.wait()
        if self._task is not None and self._task is not asyncio.current_task():
            await asyncio.wait({self._task})

    async def _run(self) -> None:
        try:
            if self._starting:
                self._starting = False
                await self.on_start()
                logger.debug("actor %s running (restarts=%d)", self.name, self.restarts)
            while True:
                if self.on_demand and self._inbox.empty():
                    self._task = None  # idle: the next message starts another task
                    return
                envelope = await self._inbox.get()
                if envelope is None:
                    break
                self._current = envelope
                await self.on_receive(envelope.message)
                self._current = None
            self._stop_marker_queued = False
            await self.on_stop()
        except asyncio.CancelledError:
            self._finish()
            raise
        except Exception as exc:  # the actor loop: a crash goes to the supervisor
            self._crashed(exc)
        else:
            self._finish()

    def _crashed(self, exc: Exception) -> None:
        envelope, self._current = self._current, None
        if envelope is not None:
            error = ActorCrashed(self.name)
            error.__cause__ = exc
            if envelope.reply is not None:
                reject(envelope.reply, error)
            self.on_rejected(envelope.message, error)
        self._crash = exc
        if self._state is ActorState.STOPPING:
            logger.error("actor %s crashed while stopping", self.name, exc_info=exc)
            self._finish()
        elif self.parent is None:
            logger.error("actor %s crashed and has no supervisor", self.name, exc_info=exc)
            self._finish()
        else:
            self._state = ActorState.CRASHED
            self.parent.child_crashed(self, exc)

    def _finish(self) -> None:
        """Become STOPPED: reject whatever is still queued, tell the parent."""
        envelope, self._current = self._current, None
        if envelope is not None:
            self._reject(envelope, ActorStopped(self.name))
        self._state = ActorState.STOPPED
        self._reject_queued()
        self._is_stopped = True
        self.on_stopped()
        if self._stopped is not None:
            self._stopped.set()
        logger.debug("actor %s stopped", self.name)
        if self.parent is not None:
            self.parent.child_stopped(self)

    def _reject_queued(self) -> None:
        while not self._inbox.empty():
            envelope = self._inbox.get_nowait()
            if envelope is not None:
                self._reject(envelope, self._refusal())
        self._stop_marker_queued = False

    def _reject(self, envelope: _Envelope[M], error: ActorError) -> None:
        """Answer a message that will not be handled, however it was sent."""
        if envelope.reply is not None:
            reject(envelope.reply, error)
        self.on_rejected(envelope.message, error)
