"""Fixtures that stop every actor and supervisor a test made, since tests share one loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from actors import Supervisor
from tests.actors.doubles import Recorder


@pytest.fixture(autouse=True)
async def no_task_left_behind() -> AsyncIterator[None]:
    """Fail a test that leaves an actor, restart or sweep task running after its teardown."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leftover = asyncio.all_tasks() - before - {asyncio.current_task()}
    assert not leftover, f"tasks left running: {leftover}"


@pytest.fixture
async def spawn() -> AsyncIterator[Callable[..., Recorder]]:
    """Make a started `Recorder` (pass start=False for a new one)."""
    made: list[Recorder] = []

    def spawn(name: str = "recorder", *, start: bool = True, **kwargs: Any) -> Recorder:
        actor = Recorder(name, **kwargs)
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
