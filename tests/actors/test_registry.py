"""Keyed actors: spawned on first use, passivated when idle, never handed out dead."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from actors import ActorCrashed, ActorState, ActorStopped, Registry, RestartPolicy, Supervisor
from tests.actors.doubles import Add, Crash, Get, Recorder, StopSelf, hold

Rooms = Registry[str, Recorder]


class Factory:
    """Builds a Recorder per key, remembering every one it built."""

    def __init__(self) -> None:
        self.built: list[Recorder] = []
        self.events: list[str] = []

    def __call__(self, key: str) -> Recorder:
        self.built.append(Recorder(f"room:{key}", events=self.events))
        return self.built[-1]


@pytest.fixture
def factory() -> Factory:
    return Factory()


@pytest.fixture
async def make_registry(factory: Factory) -> AsyncIterator[Callable[..., Rooms]]:
    """A started registry over `factory`; closed after the test."""
    made: list[Rooms] = []

    def make(*, idle_after: float = 60.0, sweep_interval: float = 60.0, **policy: float) -> Rooms:
        supervisor = Supervisor("rooms", policy=RestartPolicy(**policy))
        made.append(
            Registry(
                factory,
                supervisor=supervisor,
                idle_after=idle_after,
                sweep_interval=sweep_interval,
            )
        )
        made[-1].start()
        return made[-1]

    yield make
    for registry in made:
        await registry.close()


async def test_get_or_spawn_spawns_on_first_use_and_then_returns_the_same_actor(
    make_registry: Callable[..., Rooms], factory: Factory
) -> None:
    rooms = make_registry()
    assert rooms.get("lobby") is None

    first = rooms.get_or_spawn("lobby")
    first.tell(Add(1))
    again = rooms.get_or_spawn("lobby")

    assert again is first
    assert factory.built == [first]
    assert len(rooms) == 1
    assert await again.ask(Get, timeout=1.0) == [1]
    assert [node.name for node in rooms.snapshot().children] == ["room:lobby"]


async def test_the_sweep_passivates_an_actor_idle_for_longer_than_idle_after(
    make_registry: Callable[..., Rooms],
) -> None:
    rooms = make_registry(idle_after=0.0)
    room = rooms.get_or_spawn("lobby")
    await room.ask(Get, timeout=1.0)

    assert await rooms.sweep() == ["lobby"]

    assert room.state is ActorState.STOPPED
    assert room.events[-1] == "stop room:lobby"  # passivation is an orderly stop
    assert len(rooms) == 0
    assert rooms.get("lobby") is None


async def test_the_background_sweep_passivates_idle_actors_unasked(
    make_registry: Callable[..., Rooms],
) -> None:
    rooms = make_registry(idle_after=0.0, sweep_interval=0.001)
    room = rooms.get_or_spawn("lobby")

    await asyncio.wait_for(room.wait_stopped(), 1.0)

    assert room.events == ["start room:lobby", "stop room:lobby"]
    assert rooms.get("lobby") is None


async def test_an_actor_that_is_not_idle_is_not_passivated(
    make_registry: Callable[..., Rooms],
) -> None:
    rooms = make_registry(idle_after=0.0)
    room = rooms.get_or_spawn("lobby")
    room.busy = True  # as a room with local members reports itself
    await room.ask(Get, timeout=1.0)

    assert await rooms.sweep() == []

    assert rooms.get("lobby") is room
    room.busy = False
    assert await rooms.sweep() == ["lobby"]


async def test_a_recently_used_actor_is_not_passivated(
    make_registry: Callable[..., Rooms],
) -> None:
    rooms = make_registry(idle_after=60.0)
    room = rooms.get_or_spawn("lobby")
    rooms.touch("lobby")
    await room.ask(Get, timeout=1.0)

    assert await rooms.sweep() == []
    assert room.is_alive


async def test_get_or_spawn_during_a_stop_returns_a_fresh_actor_started_after_the_old_stops(
    make_registry: Callable[..., Rooms], factory: Factory
) -> None:
    rooms = make_registry()
    old = rooms.get_or_spawn("lobby")
    release = await hold(old)
    stopping = asyncio.create_task(rooms.stop("lobby"))
    await asyncio.sleep(0)

    new = rooms.get_or_spawn("lobby")
    new.tell(Add(2))

    assert new is not old
    assert new.state is ActorState.NEW  # takes messages now, runs once the old is gone
    release.set()
    await asyncio.wait_for(stopping, 1.0)
    assert await new.ask(Get, timeout=1.0) == [2]
    # One actor per key at a time: the new on_start follows the old on_stop.
    assert factory.events == ["start room:lobby", "stop room:lobby", "start room:lobby"]
    assert rooms.get("lobby") is new


async def test_get_or_spawn_never_returns_an_actor_that_died(
    make_registry: Callable[..., Rooms],
) -> None:
    rooms = make_registry(max_restarts=0)
    dead = rooms.get_or_spawn("lobby")
    with pytest.raises(ActorCrashed):
        await dead.ask(Crash, timeout=1.0)

    fresh = rooms.get_or_spawn("lobby")

    assert dead.state is ActorState.STOPPED
    assert fresh is not dead
    assert await fresh.ask(Get, timeout=1.0) == []


async def test_an_actor_that_stopped_itself_is_forgotten_by_the_sweep(
    make_registry: Callable[..., Rooms],
) -> None:
    rooms = make_registry()
    room = rooms.get_or_spawn("lobby")
    room.tell(StopSelf())
    await asyncio.wait_for(room.wait_stopped(), 1.0)

    assert len(rooms) == 0
    assert await rooms.sweep() == []
    assert rooms.get_or_spawn("lobby") is not room


async def test_close_stops_every_actor_and_refuses_new_ones(
    make_registry: Callable[..., Rooms],
) -> None:
    rooms = make_registry()
    lobby, kitchen = rooms.get_or_spawn("lobby"), rooms.get_or_spawn("kitchen")
    lobby.tell(Add(1))

    await rooms.close()

    assert lobby.handled == [1]  # closing drains
    assert lobby.state is kitchen.state is ActorState.STOPPED
    assert len(rooms) == 0
    with pytest.raises(ActorStopped, match="rooms"):
        rooms.get_or_spawn("lobby")
