"""Fixtures that stop every actor and supervisor a test made, since tests share one loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from actors import Supervisor
from storage.db import Database
from tests.actors.doubles import OnDemandRecorder, Recorder
from tests.actors.realtime import Realtime, started_hub


@pytest.fixture(autouse=True)
async def no_task_left_behind() -> AsyncIterator[None]:
    """Fail a test that leaves an actor, restart or sweep task running after its teardown."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leftover = asyncio.all_tasks() - before - {asyncio.current_task()}
    assert not leftover, f"tasks left running: {leftover}"


@pytest.fixture(params=[Recorder, OnDemandRecorder], ids=["own task", "on demand"])
async def spawn(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Recorder]]:
    """Make a started `Recorder` (pass start=False for a new one); every test that uses it
    runs with an actor that keeps its task and with one whose task runs on demand."""
    made: list[Recorder] = []
    kind: type[Recorder] = request.param

    def spawn(name: str = "recorder", *, start: bool = True, **kwargs: Any) -> Recorder:
        actor = kind(name, **kwargs)
        made.append(actor)
        if start:
            actor.start()
        return actor

    yield spawn
    for actor in made:
        await actor.stop(drain=False)


@pytest.fixture
async def supervisor() -> AsyncIterator[Callable[..., Supervisor]]:
    """Make a started `Supervisor` with the given keyword arguments."""
    made: list[Supervisor] = []

    def supervisor(name: str = "sup", *, start: bool = True, **kwargs: Any) -> Supervisor:
        made.append(Supervisor(name, **kwargs))
        if start:
            made[-1].start()
        return made[-1]

    yield supervisor
    for made_supervisor in reversed(made):
        await made_supervisor.stop(drain=False)


@pytest.fixture
async def realtime(database: Database) -> AsyncIterator[Realtime]:
    """A started hub with a lobby room, on the test database."""
    async with started_hub(database) as setup:
        yield setup
