"""Keyed actors spawned on first use and passivated when idle (one RoomActor per live room).

Race-freedom rests on two rules. Every decision about an entry is made without an
`await` between looking and acting, so no other task sees a half-made decision. And at
most one actor per key runs at a time: a `get_or_spawn` that finds the key's actor
stopping returns a fresh actor at once (it takes messages straight away) but starts it
only once the old one has stopped, so `on_start` of the new never overlaps `on_stop` of
the old and the messages of the key are handled in the order they were sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from actors.actor import Actor, ActorSnapshot, ActorState
from actors.supervisor import Supervisor

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
A = TypeVar("A", bound=Actor[Any])


class Registry(Generic[K, A]):
    """Actors by key under one supervisor, which the registry owns.

    Args:
        factory: builds the (not yet started) actor for a key.
        supervisor: the registry's own supervisor; add it to the application's tree.
        idle_after: seconds without `get_or_spawn`/`touch` after which an actor whose
            `is_idle()` is true is stopped.
        sweep_interval: seconds between passivation sweeps.
    """

    def __init__(
        self,
        factory: Callable[[K], A],
        *,
        supervisor: Supervisor,
        idle_after: float,
        sweep_interval: float,
    ) -> None:
        self.name = supervisor.name
        self.supervisor = supervisor
        self._factory = factory
        self._idle_after = idle_after
        self._sweep_interval = sweep_interval
        self._actors: dict[K, A] = {}
        self._last_used: dict[K, float] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._deferred: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        """The number of live actors."""
        return sum(actor.is_alive for actor in self._actors.values())

    def start(self) -> None:
        """Start the supervisor (if nobody has) and the passivation sweep."""
        self.supervisor.start()
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_forever(), name=f"registry {self.name} sweep"
            )
            self._sweeper.add_done_callback(self._sweeper_ended)

    async def close(self) -> None:
        """Stop sweeping and deferred starts, then stop every actor (draining)."""
        tasks = [*self._deferred, *([self._sweeper] if self._sweeper else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.supervisor.stop()
        self._actors.clear()
        self._last_used.clear()

    def live(self) -> list[A]:
        """Every live actor (for periodic work such as heartbeats)."""
        return [actor for actor in self._actors.values() if actor.is_alive]

    def get(self, key: K) -> A | None:
        """The key's live actor, or None; never spawns (a bus reader delivering, say)."""
        actor = self._actors.get(key)
        return actor if actor is not None and actor.is_alive else None

    def get_or_spawn(self, key: K) -> A:
        """The key's live actor, spawned now if there is none; never a stopping or dead one.

        Raises:
            ActorStopped: the registry is closed.
        """
        old = self._actors.get(key)
        if old is not None and old.is_alive:
            self.touch(key)
            return old
        actor = self._factory(key)
        if old is not None and old.state is ActorState.STOPPING:
            self.supervisor.add(actor, start=False)
            task = asyncio.get_running_loop().create_task(self._start_after(old, actor))
            self._deferred.add(task)
            task.add_done_callback(self._deferred.discard)
        else:
            self.supervisor.add(actor)
        self._actors[key] = actor
        self._last_used[key] = asyncio.get_running_loop().time()
        logger.debug("registry %s spawned %s", self.name, actor.name)
        return actor

    def touch(self, key: K) -> None:
        """Note activity on `key` so the sweep leaves its actor alone for `idle_after`."""
        if key in self._last_used:
            self._last_used[key] = asyncio.get_running_loop().time()

    async def stop(self, key: K, *, drain: bool = True) -> None:
        """Stop the key's actor, if any, and wait for it; the next use spawns a fresh one."""
        actor = self._actors.get(key)
        if actor is not None:
            await actor.stop(drain)
            self._forget(key, actor)

    async def sweep(self) -> list[K]:
        """Stop the actors idle for `idle_after` seconds; return their keys.

        The sweep also forgets actors that stopped on their own.
        """
        now = asyncio.get_running_loop().time()
        idle: list[tuple[K, A]] = []
        for key, actor in list(self._actors.items()):
            if actor.state is ActorState.STOPPED:
                self._forget(key, actor)
            elif now - self._last_used[key] >= self._idle_after and actor.is_idle():
                actor.stop_nowait()  # at once, so nobody is handed it after this check
                idle.append((key, actor))
        await asyncio.gather(*(actor.wait_stopped() for _, actor in idle))
        for key, actor in idle:
            self._forget(key, actor)
            logger.debug("registry %s passivated %s", self.name, actor.name)
        return [key for key, _ in idle]

    def snapshot(self) -> ActorSnapshot:
        """The admin view: the registry's supervisor and its actors."""
        return self.supervisor.snapshot()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            await self.sweep()

    def _sweeper_ended(self, task: asyncio.Task[None]) -> None:
        # Only a bug (an `is_idle` that raises, say) ends the sweep early; say so loudly.
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("registry %s: passivation sweep died", self.name, exc_info=exc)

    async def _start_after(self, old: A, new: A) -> None:
        await old.wait_stopped()
        if new.state is ActorState.NEW and self.supervisor.state is ActorState.RUNNING:
            new.start()

    def _forget(self, key: K, actor: A) -> None:
        """Drop the entry, unless it already belongs to a newer actor."""
        if self._actors.get(key) is actor:
            del self._actors[key]
            del self._last_used[key]
