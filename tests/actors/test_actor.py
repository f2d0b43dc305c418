"""The actor on its own: tell/ask, the bounded mailbox, stopping, and a crash with no supervisor."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from actors import (
    Actor,
    ActorCrashed,
    ActorDead,
    ActorState,
    ActorStopped,
    AskTimeout,
    MailboxFull,
)
from tests.actors.doubles import Add, Crash, Get, OnDemandRecorder, Recorder, StopSelf, hold

Spawn = Callable[..., Recorder]


async def test_tell_then_ask_sees_the_told_messages_in_order(spawn: Spawn) -> None:
    actor = spawn()
    for value in (1, 2, 3):
        actor.tell(Add(value))

    assert await actor.ask(Get, timeout=1.0) == [1, 2, 3]
    assert await actor.ask(lambda reply: Get(reply=reply), timeout=1.0) == [1, 2, 3]


async def test_messages_told_before_start_are_handled_once_started(spawn: Spawn) -> None:
    actor = spawn(start=False)
    actor.tell(Add(7))
    assert actor.state is ActorState.NEW

    actor.start()

    assert await actor.ask(Get, timeout=1.0) == [7]


async def test_a_full_mailbox_raises_mailbox_full_naming_the_actor(spawn: Spawn) -> None:
    actor = spawn("room:lobby", mailbox_size=2)
    release = await hold(actor)
    actor.tell(Add(1))
    actor.tell(Add(2))

    with pytest.raises(MailboxFull, match="room:lobby") as raised:
        actor.tell(Add(3))
    with pytest.raises(MailboxFull):
        await actor.ask(Get, timeout=1.0)

    assert raised.value.actor == "room:lobby"
    assert raised.value.code == "unavailable"
    assert actor.mailbox_depth == 2
    release.set()
    await asyncio.wait_for(actor.stop(), 1.0)
    assert actor.handled == [1, 2]


async def test_ask_times_out_cleanly_cancelling_the_reply_and_leaving_no_task(
    spawn: Spawn,
) -> None:
    actor = spawn("slow")
    release = await hold(actor)
    replies: list[asyncio.Future[list[int]]] = []

    def get(reply: asyncio.Future[list[int]]) -> Get:
        replies.append(reply)
        return Get(reply)

    tasks_before = asyncio.all_tasks()
    with pytest.raises(AskTimeout, match="slow") as raised:
        await actor.ask(get, timeout=0.01)

    assert raised.value.timeout == 0.01
    assert replies[0].cancelled()
    assert asyncio.all_tasks() == tasks_before
    release.set()
    # The late Get meets a cancelled reply and the actor carries on.
    assert await actor.ask(Get, timeout=1.0) == []
    assert actor.state is ActorState.RUNNING


async def test_a_stopped_actor_refuses_messages_with_an_error_naming_it(spawn: Spawn) -> None:
    actor = spawn("session:42")
    await actor.stop()

    with pytest.raises(ActorStopped, match="session:42"):
        actor.tell(Add(1))
    with pytest.raises(ActorStopped, match="session:42"):
        await actor.ask(Get, timeout=1.0)
    with pytest.raises(ActorStopped):
        actor.start()
    assert not actor.is_alive


async def test_an_actor_that_crashes_without_a_supervisor_is_dead(
    spawn: Spawn, caplog: pytest.LogCaptureFixture
) -> None:
    actor = spawn("orphan")
    actor.tell(Crash())
    actor.tell(Add(1))
    await asyncio.wait_for(actor.wait_stopped(), 1.0)

    with pytest.raises(ActorDead, match="orphan") as raised:
        actor.tell(Add(2))

    assert isinstance(raised.value.__cause__, RuntimeError)
    assert actor.handled == []
    assert actor.events == ["start orphan"]  # no on_stop after a crash
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "orphan" in record.getMessage()
    assert record.exc_info is not None


async def test_a_crash_fails_the_ask_whose_message_caused_it(spawn: Spawn) -> None:
    actor = spawn("fragile")

    with pytest.raises(ActorCrashed, match="fragile") as raised:
        await actor.ask(Crash, timeout=1.0)

    assert isinstance(raised.value.__cause__, RuntimeError)


async def test_stop_with_drain_handles_the_queued_messages_first(spawn: Spawn) -> None:
    actor = spawn()
    release = await hold(actor)
    for value in (1, 2, 3):
        actor.tell(Add(value))

    stopping = asyncio.create_task(actor.stop(drain=True))
    await asyncio.sleep(0)
    with pytest.raises(ActorStopped, match="recorder"):
        actor.tell(Add(4))
    release.set()
    await asyncio.wait_for(stopping, 1.0)

    assert actor.handled == [1, 2, 3]
    assert actor.events == ["start recorder", "stop recorder"]
    assert actor.state is ActorState.STOPPED


async def test_stop_without_drain_rejects_queued_messages_and_fails_their_asks(
    spawn: Spawn,
) -> None:
    actor = spawn()
    release = await hold(actor)
    actor.tell(Add(1))
    asking = asyncio.create_task(actor.ask(Get, timeout=1.0))
    await asyncio.sleep(0)

    actor.stop_nowait(drain=False)

    with pytest.raises(ActorStopped, match="recorder"):
        await asking
    assert actor.mailbox_depth == 0
    release.set()
    await asyncio.wait_for(actor.wait_stopped(), 1.0)
    assert actor.handled == []
    assert actor.events == ["start recorder", "stop recorder"]


async def test_stop_from_inside_on_receive_stops_after_that_message(spawn: Spawn) -> None:
    actor = spawn()
    actor.tell(Add(1))
    actor.tell(StopSelf())
    actor.tell(Add(2))

    await asyncio.wait_for(actor.wait_stopped(), 1.0)

    assert actor.handled == [1, 2]  # a self-stop drains what was already queued
    assert actor.state is ActorState.STOPPED


async def test_mailbox_depth_counts_waiting_messages_but_not_the_stop_marker(
    spawn: Spawn,
) -> None:
    actor = spawn()
    release = await hold(actor)
    actor.tell(Add(1))
    actor.tell(Add(2))

    actor.stop_nowait(drain=True)

    assert actor.mailbox_depth == 2
    release.set()
    await asyncio.wait_for(actor.wait_stopped(), 1.0)
    assert actor.mailbox_depth == 0


async def test_snapshot_describes_the_actor_for_the_admin_view(spawn: Spawn) -> None:
    actor = spawn("room:7", mailbox_size=4)
    release = await hold(actor)
    actor.tell(Add(1))

    snapshot = actor.snapshot()

    kind = type(actor).__name__
    assert (snapshot.name, snapshot.kind, snapshot.state) == ("room:7", kind, "running")
    assert (snapshot.mailbox_depth, snapshot.mailbox_size) == (1, 4)
    assert snapshot.restarts == 0
    assert snapshot.age_seconds >= 0
    assert snapshot.children == ()
    release.set()


async def test_cancelling_a_stop_waiter_leaves_the_actor_to_finish(spawn: Spawn) -> None:
    actor = spawn()
    release = await hold(actor)
    actor.tell(Add(1))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(actor.stop(), 0.01)

    release.set()
    await asyncio.wait_for(actor.wait_stopped(), 1.0)

    assert actor.handled == [1]


def test_a_mailbox_needs_room_for_at_least_one_message() -> None:
    with pytest.raises(ValueError, match="mailbox_size"):
        Actor[int]("tiny", mailbox_size=0)


async def test_an_on_demand_actor_has_a_task_only_while_messages_wait() -> None:
    actor = OnDemandRecorder("session:1")
    actor.start()
    assert actor._task is None and actor.events == []  # noqa: SLF001 - the point of the test
    actor.tell(Add(1))
    actor.tell(Add(2))
    assert await actor.ask(Get, timeout=1.0) == [1, 2]
    await asyncio.sleep(0)
    assert actor._task is None  # noqa: SLF001
    assert actor.events == ["start session:1"]  # once per run, before its first message
    actor.tell(Add(3))
    assert await actor.ask(Get, timeout=1.0) == [1, 2, 3]
    assert actor.events == ["start session:1"]
    await actor.stop()
    assert actor.events == ["start session:1", "stop session:1"]
    assert actor.state is ActorState.STOPPED
