"""The hub ends a session so that its rooms learn it left, and loses no notice in silence."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import event

from actors.close_reason import CloseReason
from actors.events import RoomEvent
from actors.requests import Auth, Ping
from actors.room_messages import Exit, Tick, topic
from storage import rooms
from storage.db import Database
from tests import seed
from tests.actors.realtime import (
    Realtime,
    eventually,
    eventually_present,
    hold_busy,
    hold_full,
    started_hub,
)


async def test_the_last_session_closing_is_announced_offline_even_with_an_event_on_its_way(
    realtime: Realtime,
) -> None:
    """An event the room collected for the member before its `Exit` must not find the
    member's queue closed: the room would drop it as overflowed and never say offline."""
    lobby, ada = realtime.lobby, realtime.ada
    session = realtime.open()
    await session.join(lobby.id)
    watcher = await realtime.watcher(lobby.id)
    room = realtime.hub.room(lobby.id)
    entering = await hold_busy(realtime, room)
    typing = {"type": "typing", "room": lobby.id, "user": {"id": "u-late", "name": "Late"}}
    await realtime.bus.publish(topic(lobby.id), RoomEvent.of(typing, origin="u-late").pack())
    closing = asyncio.ensure_future(realtime.hub.close_session(session.actor))
    await eventually(lambda: room.mailbox_depth == 2)  # the event, then the session's Exit
    realtime.bus.release()
    await closing
    await entering

    offline = await watcher.wait_for("presence", state="offline")
    assert offline["user"] == {"id": ada.id, "name": ada.name}
    assert session.actor.session_id not in room.members
    await eventually_present(realtime.presence, lobby.id, ada.id, present=False)
    assert session.outbound.of_type("typing")  # it had the event before it left
    assert session.outbound.closed
    assert session.closes == []  # not taken for a slow consumer
    assert realtime.counted == []


async def test_a_session_that_crashed_still_leaves_its_rooms_when_it_closes(
    realtime: Realtime,
) -> None:
    """A crash skips the session's `on_stop`; closing it must still tell its rooms."""
    lobby = realtime.lobby
    session = realtime.open()
    await session.join(lobby.id)
    watcher = await realtime.watcher(lobby.id)
    closing: list[asyncio.Future[None]] = []

    def close_on_crash(name: str, exc: Exception) -> None:
        # Called as the crash is reported, before the supervisor's restart is scheduled:
        # the close starts while the session is still down.
        closing.append(asyncio.ensure_future(realtime.hub.close_session(session.actor)))

    realtime.on_crash.append(close_on_crash)
    realtime.tokens["t"] = RuntimeError("the token check crashed")
    session.actor.tell(Auth("t", id="a1"))
    await eventually(lambda: bool(closing))
    await closing[0]

    assert session.outbound.of_type("error")[0]["code"] == "internal"
    await watcher.wait_for("presence", state="offline")
    assert session.actor.session_id not in realtime.hub.room(lobby.id).members
    assert session.outbound.closed


async def test_a_team_left_a_full_session_cannot_take_is_counted_and_ends_the_connection(
    realtime: Realtime, caplog: pytest.LogCaptureFixture
) -> None:
    session = realtime.open()
    while session.actor.mailbox_depth < session.actor.mailbox_size:
        session.actor.tell(Ping())  # told at once: its task has not run yet
    with caplog.at_level(logging.WARNING, logger="actors.failed_tells"):
        realtime.hub.member_removed(realtime.lobby.team_id, realtime.ada.id)
    assert realtime.counted == [("session", "TeamLeft", "MailboxFull")]
    assert f"hub: could not tell {session.actor.name} TeamLeft" in caplog.text
    assert session.closes == [CloseReason.ROOM_ACCESS_CHANGED]


async def test_a_team_left_a_stopped_session_cannot_take_is_counted_and_ends_the_connection(
    realtime: Realtime,
) -> None:
    session = realtime.open()
    await session.actor.stop()  # stopped, not yet closed by its connection
    realtime.hub.member_removed(realtime.lobby.team_id, realtime.ada.id)
    assert realtime.counted == [("session", "TeamLeft", "ActorStopped")]
    assert session.closes == [CloseReason.ROOM_ACCESS_CHANGED]


async def test_a_removed_member_leaves_the_team_rooms_of_every_session(
    realtime: Realtime,
) -> None:
    lobby = realtime.lobby
    first, second = realtime.open(), realtime.open()
    for session in (first, second):
        await session.join(lobby.id)
    realtime.hub.member_removed(lobby.team_id, realtime.ada.id)
    for session in (first, second):
        left = await session.outbound.wait_for("left", room=lobby.id)
        assert left["reason"] == "removed"
    room = realtime.hub.room(lobby.id)
    assert room.members == {}
    assert realtime.counted == []


async def test_a_closed_session_is_no_longer_the_users(realtime: Realtime) -> None:
    first, second = realtime.open(), realtime.open()
    await realtime.hub.close_session(first.actor)
    assert realtime.hub.sessions_of(realtime.ada.id) == [second.actor]
    await realtime.hub.close_session(second.actor)
    assert realtime.hub.sessions_of(realtime.ada.id) == []
    assert not first.actor.is_alive and first.outbound.closed


async def test_closing_the_hub_leaves_no_task_and_every_session_leaves_its_rooms(
    database: Database,
) -> None:
    async with started_hub(database) as realtime:
        session = realtime.open()
        await session.join(realtime.lobby.id)
        watcher = await realtime.watcher(realtime.lobby.id)
        room = realtime.hub.room(realtime.lobby.id)
        await realtime.hub.close()
        assert not session.actor.is_alive
        assert session.actor.session_id not in room.members
        assert watcher.of_type("presence")[-1]["state"] == "offline"


async def test_a_deletion_a_busy_room_cannot_take_is_told_again_on_a_later_tick(
    database: Database,
) -> None:
    async with started_hub(database, tick_interval=0.01) as realtime:
        lobby = realtime.lobby
        session = realtime.open()
        await session.join(lobby.id)
        room = realtime.hub.room(lobby.id)
        entering = await hold_full(realtime, room)
        realtime.hub.room_deleted(lobby.id)
        assert ("room", "Deleted", "MailboxFull") in realtime.counted
        realtime.bus.release()
        await entering
        left = await session.outbound.wait_for("left", room=lobby.id)
        assert left["reason"] == "deleted"
        await eventually(lambda: not room.is_alive)


async def test_a_tick_reads_every_live_room_in_one_statement_and_applies_what_it_read(
    database: Database,
) -> None:
    """The hub reads the live rooms' records once per tick, for all of them: a settings
    change the control stream never brought still reaches each room, at the cost of one
    statement per tick, not one per room."""
    async with started_hub(database, tick_interval=0.05) as realtime:
        async with database.sessions.begin() as session:
            annex = await seed.room(session, realtime.lobby.team_id, realtime.ada, "annex")
        session_ = realtime.open()
        for room_id in (realtime.lobby.id, annex.id):
            await session_.join(room_id)
        lobby, other = realtime.hub.room(realtime.lobby.id), realtime.hub.room(annex.id)
        async with database.sessions.begin() as session:
            for room_id in (realtime.lobby.id, annex.id):
                await rooms.change(session, room_id, assistant="auto", system_prompt="Be terse.")

        await eventually(
            lambda: all(
                r.settings is not None and r.settings.assistant == "auto" for r in (lobby, other)
            )
        )
        assert other.settings is not None and other.settings.system_prompt == "Be terse."

        reads: list[tuple[str, object]] = []

        def seen(
            _conn: object, _cursor: object, statement: str, params: object, *_: object
        ) -> None:
            if "FROM rooms" in statement:
                reads.append((statement, params))

        event.listen(database.engine.sync_engine, "before_cursor_execute", seen)
        try:
            await asyncio.sleep(0.3)  # some six ticks
        finally:
            event.remove(database.engine.sync_engine, "before_cursor_execute", seen)
        assert reads
        for statement, params in reads:  # each tick: one statement naming both rooms
            assert " IN " in statement
            assert {realtime.lobby.id, annex.id} <= set(map(str, params))  # type: ignore[call-overload]


async def test_a_tick_read_before_a_reload_does_not_undo_it(realtime: Realtime) -> None:
    """`room_changed` makes the room read its settings at once; a tick whose read began
    earlier carries the older settings and must not put them back."""
    lobby = realtime.lobby
    session = realtime.open()
    await session.join(lobby.id)
    room = realtime.hub.room(lobby.id)
    async with realtime.database.sessions.begin() as db:
        await rooms.change(db, lobby.id, assistant="off")
    realtime.hub.room_changed(lobby.id)
    await eventually(lambda: room.settings is not None and room.settings.assistant == "off")

    room.tell(Tick(lobby, read_at=0.0))  # read (with mode "mention") before the reload
    await room.ask(lambda reply: Exit("nobody", None, reply), timeout=5)  # the tick is done

    assert room.settings is not None and room.settings.assistant == "off"
