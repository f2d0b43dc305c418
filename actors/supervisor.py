"""One-for-one supervision, as OTP: restart a crashed child with backoff, give up past a limit.

A child is an `Actor` or another `Supervisor`, so supervisors form a tree that
`snapshot()` shows. When a child crashes more than `max_restarts` times within `within`
seconds the supervisor stops that child and escalates a `RestartLimitExceeded` up the
tree; the top-level supervisor logs it as critical. Unlike OTP, the child's siblings
are left running: one room that keeps crashing must not take the other rooms down, so
escalation reports rather than restarts the subtree, and the application decides.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from actors.actor import Actor, ActorSnapshot, ActorState
from actors.errors import ActorStopped, RestartLimitExceeded

logger = logging.getLogger(__name__)

Child: TypeAlias = "Actor[Any] | Supervisor"
CrashCallback = Callable[[str, Exception], None]
EscalateCallback = Callable[[RestartLimitExceeded], None]


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How hard to try: OTP's restart intensity plus exponential backoff between restarts.

    Args:
        max_restarts: restarts allowed within `within` seconds; one more crash gives up.
        within: the sliding window, in seconds.
        backoff_base: delay before the first restart in a window; doubled for each next.
        backoff_max: the delay never exceeds this.
    """

    max_restarts: int = 3
    within: float = 5.0
    backoff_base: float = 0.05
    backoff_max: float = 2.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0 or self.within <= 0:
            raise ValueError("max_restarts must be >= 0 and within > 0")
        if not 0 <= self.backoff_base <= self.backoff_max:
            raise ValueError("need 0 <= backoff_base <= backoff_max")

    def backoff(self, crashes: int) -> float:
        """Delay before restarting after the `crashes`-th crash in the window (1-based)."""
        return min(self.backoff_max, self.backoff_base * 2.0 ** min(max(0, crashes - 1), 64))


class Supervisor:
    """Starts its children, restarts the one that crashes, stops them in reverse order.

    Args:
        name: in every log line and in the admin tree.
        policy: restart intensity and backoff.
        on_crash: called with (child name, exception) on every crash, for metrics.
        on_escalate: called when this supervisor, or one below it, gives up on a child.
        sleep: waits out a backoff; tests pass one that records the delays.
    """

    def __init__(
        self,
        name: str,
        *,
        policy: RestartPolicy | None = None,
        on_crash: CrashCallback | None = None,
        on_escalate: EscalateCallback | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.name = name
        self.policy = policy or RestartPolicy()
        self.parent: Supervisor | None = None
        self.crashes = 0  # every crash of a direct child, restarted or not
        self.escalations = 0  # every give-up seen here, from this level or below
        self.started_at: float | None = None
        self._on_crash = on_crash
        self._on_escalate = on_escalate
        self._sleep = sleep
        self._state = ActorState.NEW
        self._children: list[Child] = []
        self._crash_times: dict[Actor[Any], deque[float]] = {}
        self._restarting: dict[Actor[Any], asyncio.Task[None]] = {}
        self._stopped = asyncio.Event()

    def __repr__(self) -> str:
        return f"<Supervisor {self.name} {self._state.value} children={len(self._children)}>"

    @property
    def state(self) -> ActorState:
        """NEW, RUNNING, STOPPING or STOPPED (a supervisor never crashes)."""
        return self._state

    @property
    def is_alive(self) -> bool:
        """True until `stop` begins: children may still be added."""
        return self._state in (ActorState.NEW, ActorState.RUNNING)

    @property
    def children(self) -> tuple[Child, ...]:
        """Current children in start order."""
        return tuple(self._children)

    def add(self, child: Child, *, start: bool = True) -> None:
        """Adopt `child`; start it now if this supervisor runs and `start` is true.

        Raises:
            ActorStopped: this supervisor is stopping or stopped.
            ValueError: the child already has a supervisor.
        """
        if not self.is_alive:
            raise ActorStopped(self.name, "supervisor is stopped")
        if child.parent is not None:
            raise ValueError(f"{child.name} is already supervised by {child.parent!r}")
        child.parent = self
        self._children.append(child)
        if start and self._state is ActorState.RUNNING:
            child.start()

    def start(self) -> None:
        """Start every child not started yet, in the order they were added."""
        if self._state is ActorState.RUNNING:
            return
        if not self.is_alive:
            raise ActorStopped(self.name, "supervisor is stopped")
        self.started_at = asyncio.get_running_loop().time()
        self._state = ActorState.RUNNING
        for child in self._children:
            if child.state is ActorState.NEW:
                child.start()
        logger.debug("supervisor %s started %d children", self.name, len(self._children))

    async def stop(self, drain: bool = True) -> None:
        """Cancel pending restarts, then stop the children in reverse start order.

        A second caller (the registry closing while the tree shuts down) waits for the
        first to finish.
        """
        if self._state in (ActorState.STOPPING, ActorState.STOPPED):
            await self._stopped.wait()
            return
        self._state = ActorState.STOPPING
        pending = list(self._restarting.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for child in reversed(self.children):
            await child.stop(drain)
        self._state = ActorState.STOPPED
        self._stopped.set()
        logger.debug("supervisor %s stopped", self.name)
        if self.parent is not None:
            self.parent.child_stopped(self)

    def snapshot(self) -> ActorSnapshot:
        """The admin tree below and including this supervisor."""
        age = 0.0
        if self.started_at is not None:
            age = asyncio.get_running_loop().time() - self.started_at
        return ActorSnapshot(
            name=self.name,
            kind=type(self).__name__,
            state=self._state.value,
            mailbox_depth=None,
            mailbox_size=None,
            restarts=0,
            age_seconds=round(age, 3),
            children=tuple(child.snapshot() for child in self._children),
        )

    # What children report (the actor.Parent protocol).

    def child_crashed(self, child: Actor[Any], exc: Exception) -> None:
        """Count and log the crash, then restart the child after a backoff or give up."""
        self.crashes += 1
        if self._on_crash is not None:
            self._on_crash(child.name, exc)
        if self._state is not ActorState.RUNNING:
            logger.error(
                "supervisor %s: %s crashed while the supervisor is %s, not restarting it",
                self.name,
                child.name,
                self._state.value,
                exc_info=exc,
            )
            child.stop_nowait(drain=False)
            return
        crashes = self._count_crash(child)
        if crashes > self.policy.max_restarts:
            self._give_up(child, exc, crashes)
            return
        delay = self.policy.backoff(crashes)
        logger.error(
            "supervisor %s: %s crashed (%d in %gs), restarting in %.3fs",
            self.name,
            child.name,
            crashes,
            self.policy.within,
            delay,
            exc_info=exc,
        )
        task = asyncio.get_running_loop().create_task(
            self._restart_later(child, delay), name=f"restart {child.name}"
        )
        self._restarting[child] = task

    def child_stopped(self, child: Child) -> None:
        """Forget a child that stopped, whoever stopped it."""
        if child in self._children:
            self._children.remove(child)
        if isinstance(child, Actor):
            self._crash_times.pop(child, None)
            task = self._restarting.pop(child, None)
            if task is not None and task is not asyncio.current_task():
                task.cancel()

    def escalate(self, error: RestartLimitExceeded) -> None:
        """Pass a give-up up the tree; the top-level supervisor logs it as critical."""
        self.escalations += 1
        if self._on_escalate is not None:
            self._on_escalate(error)
        if self.parent is not None:
            self.parent.escalate(error)
        else:
            logger.critical("supervisor %s: escalation reached the top: %s", self.name, error)

    # Internals.

    def _count_crash(self, child: Actor[Any]) -> int:
        """Record a crash now and return how many fall within the policy's window."""
        now = asyncio.get_running_loop().time()
        times = self._crash_times.setdefault(child, deque())
        while times and now - times[0] > self.policy.within:
            times.popleft()
        times.append(now)
        return len(times)

    def _give_up(self, child: Actor[Any], exc: Exception, crashes: int) -> None:
        logger.error(
            "supervisor %s: %s crashed %d times in %gs, stopping it",
            self.name,
            child.name,
            crashes,
            self.policy.within,
            exc_info=exc,
        )
        error = RestartLimitExceeded(self.name, child.name, crashes, self.policy.within)
        error.__cause__ = exc
        child.stop_nowait(drain=False)
        self.escalate(error)

    async def _restart_later(self, child: Actor[Any], delay: float) -> None:
        try:
            await self._sleep(delay)
        finally:
            if self._restarting.get(child) is asyncio.current_task():
                del self._restarting[child]
        if child.state is ActorState.CRASHED and self._state is ActorState.RUNNING:
            child.restarts += 1
            child.start()
            logger.info(
                "supervisor %s: restarted %s (restart %d)", self.name, child.name, child.restarts
            )
