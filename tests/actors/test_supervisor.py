"""One-for-one supervision: restart with backoff, keep the mailbox, give up and escalate."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from actors import (
    ActorCrashed,
    ActorDead,
    ActorState,
    ActorStopped,
    RestartLimitExceeded,
    RestartPolicy,
    Supervisor,
)
from tests.actors.doubles import Add, Crash, Get, Recorder, StopSelf, hold

Spawn = Callable[..., Recorder]
MakeSupervisor = Callable[..., Supervisor]

QUICK = RestartPolicy(max_restarts=3, within=60.0, backoff_base=0.001, backoff_max=0.004)


class RecordingSleep:
    """Stands in for asyncio.sleep in backoffs: notes each delay, waits for `gate` if set."""

    def __init__(self, *, gated: bool = False) -> None:
        self.delays: list[float] = []
        self.sleeping = asyncio.Event()
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.sleeping.set()
        await self.gate.wait()


async def test_a_crashed_child_restarts_and_handles_the_messages_queued_behind_the_crash(
    spawn: Spawn, supervisor: MakeSupervisor
) -> None:
    sup = supervisor(policy=QUICK)
    child = spawn("room:1", start=False)
    sup.add(child)
    release = await hold(child)
    for message in (Add(1), Crash(), Add(2), Add(3)):
        child.tell(message)
    release.set()

    assert await child.ask(Get, timeout=1.0) == [1, 2, 3]
    assert child.restarts == 1
    assert sup.crashes == 1
    assert child.events == ["start room:1", "start room:1"]  # on_start again, no on_stop
    assert child.run_handled == 3  # per-run state was re-initialised: Add 2, Add 3, Get


async def test_messages_told_while_a_child_waits_for_its_restart_are_kept(
    spawn: Spawn, supervisor: MakeSupervisor
) -> None:
    sleep = RecordingSleep(gated=True)
    sup = supervisor(policy=QUICK, sleep=sleep)
    child = spawn(start=False)
    sup.add(child)
    child.tell(Crash())
    await asyncio.wait_for(sleep.sleeping.wait(), 1.0)

    assert child.state is ActorState.CRASHED
    child.tell(Add(5))
    child.tell(Add(6))
    sleep.gate.set()

    assert await child.ask(Get, timeout=1.0) == [5, 6]
    assert child.state is ActorState.RUNNING


async def test_backoff_doubles_with_each_crash_in_the_window_up_to_the_maximum(
    spawn: Spawn, supervisor: MakeSupervisor
) -> None:
    sleep = RecordingSleep()
    policy = RestartPolicy(max_restarts=10, within=60.0, backoff_base=0.001, backoff_max=0.004)
    sup = supervisor(policy=policy, sleep=sleep)
    child = spawn(start=False)
    sup.add(child)
    for _ in range(4):
        child.tell(Crash())
    child.tell(Add(1))

    assert await child.ask(Get, timeout=1.0) == [1]
    assert sleep.delays == [0.001, 0.002, 0.004, 0.004]
    assert child.restarts == 4


def test_restart_policy_backoff_grows_and_is_capped() -> None:
    policy = RestartPolicy(backoff_base=0.1, backoff_max=1.0)

    delays = [policy.backoff(crashes) for crashes in range(1, 7)]

    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert policy.backoff(10_000) == 1.0


def test_restart_policy_rejects_a_backoff_base_above_its_maximum() -> None:
    with pytest.raises(ValueError, match="backoff_base"):
        RestartPolicy(backoff_base=2.0, backoff_max=1.0)


async def test_too_many_crashes_in_the_window_stop_the_child_and_escalate(
    spawn: Spawn, supervisor: MakeSupervisor, caplog: pytest.LogCaptureFixture
) -> None:
    escalated: list[RestartLimitExceeded] = []
    done = asyncio.Event()

    def on_escalate(error: RestartLimitExceeded) -> None:
        escalated.append(error)
        done.set()

    policy = RestartPolicy(max_restarts=2, within=60.0, backoff_base=0.001, backoff_max=0.001)
    sup = supervisor("rooms", policy=policy, on_escalate=on_escalate)
    child = spawn("room:9", start=False)
    sup.add(child)
    for message in (Crash(), Crash(), Crash(), Add(1)):
        child.tell(message)
    await asyncio.wait_for(done.wait(), 1.0)

    [error] = escalated
    assert (error.supervisor, error.child, error.crashes) == ("rooms", "room:9", 3)
    assert isinstance(error.__cause__, RuntimeError)
    assert child.state is ActorState.STOPPED
    assert child not in sup.children
    assert child.handled == []  # the queued Add was rejected with the child
    with pytest.raises(ActorDead, match="room:9"):
        child.tell(Add(2))
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1
    assert "rooms" in critical[0].getMessage()


async def test_escalation_from_a_nested_supervisor_reaches_the_top(
    spawn: Spawn, supervisor: MakeSupervisor, caplog: pytest.LogCaptureFixture
) -> None:
    at_top: list[RestartLimitExceeded] = []
    root = supervisor("root", on_escalate=at_top.append)
    strict = RestartPolicy(max_restarts=0, within=60.0)
    rooms = supervisor("rooms", start=False, policy=strict)
    root.add(rooms)
    child = spawn("room:3", start=False)
    rooms.add(child)

    with pytest.raises(ActorCrashed):
        await child.ask(Crash, timeout=1.0)

    assert [error.child for error in at_top] == ["room:3"]
    assert (rooms.escalations, root.escalations) == (1, 1)
    assert rooms.state is ActorState.RUNNING  # siblings are not taken down
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1
    assert "root" in critical[0]


async def test_every_crash_is_counted_reported_and_logged_with_its_traceback(
    spawn: Spawn, supervisor: MakeSupervisor, caplog: pytest.LogCaptureFixture
) -> None:
    crashes: list[tuple[str, Exception]] = []
    sup = supervisor(
        "sessions", policy=QUICK, on_crash=lambda name, exc: crashes.append((name, exc))
    )
    child = spawn("session:5", start=False)
    sup.add(child)
    child.tell(Crash())
    child.tell(Crash())

    assert await child.ask(Get, timeout=1.0) == []

    assert sup.crashes == 2
    assert [(name, type(exc)) for name, exc in crashes] == [("session:5", RuntimeError)] * 2
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert all("session:5" in r.getMessage() and r.exc_info for r in errors)


async def test_stop_drains_children_in_reverse_start_order(
    spawn: Spawn, supervisor: MakeSupervisor
) -> None:
    events: list[str] = []
    sup = supervisor()
    children = [spawn(name, start=False, events=events) for name in ("a", "b", "c")]
    for child in children:
        sup.add(child)
        child.tell(Add(1))

    await asyncio.wait_for(sup.stop(), 1.0)

    assert events[3:] == ["stop c", "stop b", "stop a"]
    assert all(child.handled == [1] for child in children)
    assert sup.children == ()
    with pytest.raises(ActorStopped, match="sup"):
        sup.add(spawn(start=False))


async def test_stopping_the_supervisor_cancels_a_pending_restart(
    spawn: Spawn, supervisor: MakeSupervisor
) -> None:
    sleep = RecordingSleep(gated=True)
    sup = supervisor(policy=QUICK, sleep=sleep)
    child = spawn("room:8", start=False)
    sup.add(child)
    child.tell(Crash())
    await asyncio.wait_for(sleep.sleeping.wait(), 1.0)

    await asyncio.wait_for(sup.stop(), 1.0)

    assert child.state is ActorState.STOPPED
    assert child.restarts == 0
    with pytest.raises(ActorDead, match="room:8"):
        child.tell(Add(1))


async def test_a_child_that_stops_itself_leaves_its_supervisor(
    spawn: Spawn, supervisor: MakeSupervisor
) -> None:
    sup = supervisor()
    child = spawn(start=False)
    sup.add(child)

    child.tell(StopSelf())
    await asyncio.wait_for(child.wait_stopped(), 1.0)

    assert sup.children == ()
    assert sup.crashes == 0


async def test_a_child_cannot_have_two_supervisors(
    spawn: Spawn, supervisor: MakeSupervisor
) -> None:
    child = spawn(start=False)
    supervisor("first").add(child)

    with pytest.raises(ValueError, match="already supervised"):
        supervisor("second").add(child)


async def test_snapshot_shows_the_tree_with_restarts_and_mailboxes(
    spawn: Spawn, supervisor: MakeSupervisor
) -> None:
    root = supervisor("root", policy=QUICK)
    rooms = supervisor("rooms", start=False, policy=QUICK)
    root.add(rooms)
    lobby = spawn("room:lobby", start=False)
    rooms.add(lobby)
    bus = spawn("bus", start=False)
    root.add(bus)
    lobby.tell(Crash())
    await lobby.ask(Get, timeout=1.0)

    tree = root.snapshot()

    assert [(node.name, node.kind) for node in tree.children] == [
        ("rooms", "Supervisor"),
        ("bus", type(bus).__name__),
    ]
    [room] = tree.children[0].children
    assert (room.name, room.restarts, room.mailbox_size) == ("room:lobby", 1, 16)
    assert tree.mailbox_depth is None


async def test_a_second_stop_waits_until_the_children_have_stopped(
    spawn: Spawn, supervisor: MakeSupervisor
) -> None:
    sup = supervisor()
    child = spawn(start=False)
    sup.add(child)
    release = await hold(child)
    first = asyncio.create_task(sup.stop())
    second = asyncio.create_task(sup.stop())
    await asyncio.sleep(0)

    assert not second.done()
    release.set()
    await asyncio.wait_for(second, 1.0)

    assert child.state is ActorState.STOPPED
    await first
