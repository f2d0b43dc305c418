"""The session actor: what it answers to each request, and how it leaves its rooms.

Rooms are real rooms of a real hub, storing in the test database.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

import pytest

from actors.close_reason import CloseReason
from actors.events import RoomEvent
from actors.ports import UserRef, Verified
from actors.requests import Auth, Cancel, Join, Leave, Ping, Send, Typing
from actors.room import RoomActor
from actors.room_messages import FillGap, topic
from actors.session import TeamLeft
from storage import teams
from storage.db import Database
from storage.messages import Author
from storage.rooms import RoomRecord
from storage.users import UserRecord
from tests import seed
from tests.actors.realtime import (
    Realtime,
    eventually,
    hold_busy,
    hold_full,
    make_store,
    started_hub,
)


async def teammate(realtime: Realtime, name: str = "Bob") -> UserRecord:
    """Another user, a plain member of the lobby's team."""
    async with realtime.database.sessions.begin() as session:
        bob = await seed.user(session, name)
        await seed.member(session, realtime.lobby.team_id, bob, "member")
    return bob


async def second_room(realtime: Realtime) -> RoomRecord:
    async with realtime.database.sessions.begin() as session:
        return await seed.room(session, realtime.lobby.team_id, realtime.ada, "second")


# Requests and their replies.


async def test_a_ping_is_answered_pong(realtime: Realtime) -> None:
    session = realtime.open()
    assert await session.request(Ping(id=7), "pong") == {"type": "pong", "re": 7}


async def test_a_join_is_answered_joined_with_the_rooms_last_seq(realtime: Realtime) -> None:
    author = Author.user(realtime.ada.id, realtime.ada.name)
    await seed.messages(realtime.database, realtime.lobby.id, author, 2)
    session = realtime.open()
    joined = await session.join(realtime.lobby.id)
    assert joined["seq"] == 2
    assert {"id": realtime.ada.id, "name": realtime.ada.name} in joined["members"]
    assert session.actor.joined.keys() == {realtime.lobby.id}


@pytest.mark.parametrize(
    "room_id", ["not-an-id", "6f1c2a3e-0000-4000-8000-000000000000"], ids=["malformed", "unknown"]
)
async def test_a_join_of_no_room_is_not_found(realtime: Realtime, room_id: str) -> None:
    session = realtime.open()
    error = await session.request(Join(room_id, id="j"), "joined")
    assert (error["type"], error["code"]) == ("error", "not_found")
    assert session.actor.joined == {}


async def test_a_join_of_another_teams_room_is_not_found(realtime: Realtime) -> None:
    async with realtime.database.sessions.begin() as db:
        stranger = await seed.user(db, "Eve")
    session = realtime.open(stranger)
    error = await session.request(Join(realtime.lobby.id, id="j"), "joined")
    assert (error["type"], error["code"]) == ("error", "not_found")
    assert realtime.hub.rooms.get(realtime.lobby.id) is None  # no room was even started


async def test_a_send_before_a_join_is_forbidden(realtime: Realtime) -> None:
    session = realtime.open()
    error = await session.request(Send(realtime.lobby.id, "hi", id="s"), "ack")
    assert (error["type"], error["code"]) == ("error", "forbidden")


async def test_a_send_is_stored_then_acked_with_its_seq(realtime: Realtime) -> None:
    session = realtime.open()
    await session.join(realtime.lobby.id)
    ack = await session.request(Send(realtime.lobby.id, "hi", "c-1", id="s"), "ack")
    assert ack == {
        "type": "ack",
        "re": "s",
        "room": realtime.lobby.id,
        "seq": 1,
        "client_id": "c-1",
    }
    stored = await make_store(realtime.database).events_between(realtime.lobby.id, 0, 1)
    assert [(m["seq"], m["body"]) for m in stored] == [(1, "hi")]


async def test_typing_reaches_the_other_members_but_not_the_typist(realtime: Realtime) -> None:
    session = realtime.open()
    await session.join(realtime.lobby.id)
    watcher = await realtime.watcher(realtime.lobby.id)
    session.actor.tell(Typing(realtime.lobby.id, id="t"))
    typing = await watcher.wait_for("typing")
    assert typing["user"] == {"id": realtime.ada.id, "name": realtime.ada.name}
    await session.request(Ping(id="after"), "pong")  # the typing was handled before it
    assert session.outbound.of_type("typing") == []
    assert [f for f in session.outbound.seen if f.get("re") == "t"] == []  # no reply


async def test_typing_in_a_room_not_joined_is_forbidden(realtime: Realtime) -> None:
    session = realtime.open()
    error = await session.request(Typing(realtime.lobby.id, id="t"), "typing")
    assert error["code"] == "forbidden"


async def test_a_leave_is_answered_left_and_the_room_announces_the_user_offline(
    realtime: Realtime,
) -> None:
    session = realtime.open()
    await session.join(realtime.lobby.id)
    watcher = await realtime.watcher(realtime.lobby.id)
    left = await session.request(Leave(realtime.lobby.id, id="l"), "left")
    assert left == {"type": "left", "room": realtime.lobby.id, "re": "l"}
    offline = await watcher.wait_for("presence", state="offline")
    assert offline["user"]["id"] == realtime.ada.id
    assert session.actor.session_id not in realtime.hub.room(realtime.lobby.id).members
    error = await session.request(Send(realtime.lobby.id, "hi", id="s"), "ack")
    assert error["code"] == "forbidden"


async def test_a_leave_of_a_room_not_joined_is_answered_left(realtime: Realtime) -> None:
    session = realtime.open()
    left = await session.request(Leave(realtime.lobby.id, id="l"), "left")
    assert left == {"type": "left", "room": realtime.lobby.id, "re": "l"}


async def test_a_cancel_of_no_running_answer_is_not_found(realtime: Realtime) -> None:
    session = realtime.open()
    await session.join(realtime.lobby.id)
    error = await session.request(Cancel(realtime.lobby.id, "no-such-gen", id="c"), "ack")
    assert (error["type"], error["code"]) == ("error", "not_found")


async def test_a_cancel_in_a_room_not_joined_is_forbidden(realtime: Realtime) -> None:
    session = realtime.open()
    error = await session.request(Cancel(realtime.lobby.id, "g", id="c"), "ack")
    assert error["code"] == "forbidden"


# A room too busy to take a request.


@contextlib.asynccontextmanager
async def lobby_held_full(realtime: Realtime) -> AsyncIterator[RoomActor]:
    """The lobby's room, held busy with a full mailbox while the block runs; released and
    its held request handled after it."""
    room = realtime.hub.room(realtime.lobby.id)
    entering = await hold_full(realtime, room)
    yield room
    realtime.bus.release()
    await entering


async def test_a_send_a_full_room_cannot_take_is_rate_limited_and_not_stored(
    realtime: Realtime,
) -> None:
    session = realtime.open()
    await session.join(realtime.lobby.id)
    async with lobby_held_full(realtime):
        error = await session.request(Send(realtime.lobby.id, "hi", "c-1", id="s"), "ack")
    assert (error["code"], error["message"]) == ("rate_limited", "the room is busy; retry shortly")
    assert session.closes == []  # the connection stays
    assert await make_store(realtime.database).events_between(realtime.lobby.id, 0, 1) == []
    ack = await session.request(Send(realtime.lobby.id, "hi", "c-1", id="again"), "ack")
    assert ack["seq"] == 1  # the retry is stored


async def test_typing_a_full_room_cannot_take_is_logged_and_counted_not_answered(
    realtime: Realtime, caplog: pytest.LogCaptureFixture
) -> None:
    session = realtime.open()
    await session.join(realtime.lobby.id)
    async with lobby_held_full(realtime) as room:
        with caplog.at_level(logging.WARNING, logger="actors.failed_tells"):
            session.actor.tell(Typing(realtime.lobby.id, id="t"))
            await session.request(Ping(id="after"), "pong")
    assert realtime.counted == [("room", "UserTyping", "MailboxFull")]
    assert f"{session.actor.name}: could not tell {room.name} UserTyping" in caplog.text
    assert [f for f in session.outbound.seen if f.get("re") == "t"] == []


async def test_a_leave_a_full_room_cannot_hear_is_rate_limited_and_the_session_stays(
    realtime: Realtime,
) -> None:
    session = realtime.open()
    await session.join(realtime.lobby.id)
    async with lobby_held_full(realtime) as room:
        error = await session.request(Leave(realtime.lobby.id, id="l"), "left")
        assert (error["type"], error["code"]) == ("error", "rate_limited")
        assert realtime.lobby.id in session.actor.joined
    left = await session.request(Leave(realtime.lobby.id, id="again"), "left")
    assert left["type"] == "left"
    await eventually(lambda: session.actor.session_id not in room.members)


async def test_a_join_that_timed_out_does_not_leave_the_session_in_the_room(
    database: Database,
) -> None:
    async with started_hub(database, join_timeout=0.05) as realtime:
        session = realtime.open()
        room = realtime.hub.room(realtime.lobby.id)
        entering = await hold_busy(realtime, room)  # our Enter waits behind this one
        error = await session.request(Join(realtime.lobby.id, id="j"), "joined")
        assert (error["type"], error["code"]) == ("error", "unavailable")
        realtime.bus.release()
        await entering
        await eventually(lambda: not room.mailbox_depth)
        await session.request(Ping(id="p"), "pong")
        assert session.actor.joined == {}
        assert session.actor.session_id not in room.members  # let in late, then let go


async def test_a_join_that_timed_out_in_a_room_too_full_to_undo_it_ends_the_connection(
    database: Database,
) -> None:
    async with started_hub(database, join_timeout=0.05) as realtime:
        session = realtime.open()
        room = realtime.hub.room(realtime.lobby.id)
        entering = await hold_busy(realtime, room)
        while room.mailbox_depth < room.mailbox_size - 1:
            room.tell(FillGap())
        error = await session.request(Join(realtime.lobby.id, id="j"), "joined")  # last slot
        realtime.bus.release()
        await entering
        assert (error["type"], error["code"]) == ("error", "unavailable")
        assert session.closes == [CloseReason.ROOM_ACCESS_CHANGED]
        assert realtime.counted == [("room", "Exit", "MailboxFull")]


# Access lost while joined.


async def test_a_team_left_takes_the_teams_rooms_with_a_left_removed(realtime: Realtime) -> None:
    session = realtime.open()
    await session.join(realtime.lobby.id)
    session.actor.tell(TeamLeft(realtime.lobby.team_id))
    left = await session.outbound.wait_for("left", room=realtime.lobby.id)
    assert left["reason"] == "removed"
    error = await session.request(Send(realtime.lobby.id, "hi", id="s"), "ack")
    assert error["code"] == "forbidden"
    assert session.actor.session_id not in realtime.hub.room(realtime.lobby.id).members


async def test_a_team_left_a_full_room_cannot_hear_is_counted_and_ends_the_connection(
    realtime: Realtime,
) -> None:
    session = realtime.open()
    await session.join(realtime.lobby.id)
    async with lobby_held_full(realtime):
        session.actor.tell(TeamLeft(realtime.lobby.team_id))
        await eventually(lambda: bool(session.closes))
    assert session.closes == [CloseReason.ROOM_ACCESS_CHANGED]
    assert realtime.counted == [("room", "Exit", "MailboxFull")]
    assert session.actor.joined == {}


async def test_a_team_left_of_another_team_changes_nothing(realtime: Realtime) -> None:
    session = realtime.open()
    await session.join(realtime.lobby.id)
    session.actor.tell(TeamLeft(str(uuid.uuid4())))
    ack = await session.request(Send(realtime.lobby.id, "hi", id="s"), "ack")
    assert ack["type"] == "ack"
    assert session.outbound.of_type("left") == []


# Re-authentication.


async def test_a_reauth_answers_ready_and_takes_the_new_tokens_expiry_and_sign_in(
    realtime: Realtime,
) -> None:
    session = realtime.open()
    ada = UserRef(realtime.ada.id, realtime.ada.name)
    realtime.tokens["fresh"] = Verified(ada, expires_at=2e12, family_id="f2")
    ready = await session.request(Auth("fresh", id="a"), "ready")
    assert (ready["type"], ready["session"]) == ("ready", session.actor.session_id)
    assert ready["user"] == {"id": ada.id, "name": ada.name}
    assert (session.actor.token_expires_at, session.actor.family_id) == (2e12, "f2")


async def test_a_reauth_with_another_users_token_is_invalid(realtime: Realtime) -> None:
    session = realtime.open()
    realtime.tokens["bobs"] = Verified(UserRef("someone", "Else"), expires_at=2e12, family_id="f")
    error = await session.request(Auth("bobs", id="a"), "ready")
    assert (error["type"], error["code"]) == ("error", "invalid")
    assert session.actor.family_id == "f1"


async def test_a_reauth_with_a_bad_token_closes_the_connection(realtime: Realtime) -> None:
    session = realtime.open()
    session.actor.tell(Auth("no such token", id="a"))
    await eventually(lambda: bool(session.closes))
    assert session.closes == [CloseReason.INVALID_TOKEN]


async def test_a_reauth_leaves_the_rooms_the_user_may_no_longer_enter(
    realtime: Realtime,
) -> None:
    bob = await teammate(realtime)
    session = realtime.open(bob)
    await session.join(realtime.lobby.id)
    async with realtime.database.sessions.begin() as db:
        await teams.remove_member(db, realtime.lobby.team_id, bob.id)
    realtime.tokens["fresh"] = Verified(UserRef(bob.id, bob.name), 2e12, "f1")
    await session.request(Auth("fresh", id="a"), "ready")
    left = await session.outbound.wait_for("left", room=realtime.lobby.id)
    assert left["reason"] == "removed"
    assert session.actor.joined == {}


# Stopping, and a queue that overflows.


async def test_a_stopping_session_leaves_every_room_it_joined(realtime: Realtime) -> None:
    second = await second_room(realtime)
    session = realtime.open()
    await session.join(realtime.lobby.id)
    await session.join(second.id)
    watchers = [await realtime.watcher(room_id) for room_id in (realtime.lobby.id, second.id)]
    await session.actor.stop()
    for room_id, watcher in zip((realtime.lobby.id, second.id), watchers, strict=True):
        assert session.actor.session_id not in realtime.hub.room(room_id).members
        offline = await watcher.wait_for("presence", state="offline")
        assert offline["user"]["id"] == realtime.ada.id
    assert session.actor.joined == {}
    assert realtime.counted == []


async def test_a_room_that_overflows_the_queue_reports_it_and_the_connection_closes(
    realtime: Realtime,
) -> None:
    session = realtime.open(hard_limit=4096)
    await session.join(realtime.lobby.id)
    room = realtime.hub.room(realtime.lobby.id)
    event = {"type": "message", "room": realtime.lobby.id, "seq": 1, "body": "x" * 5000}
    await realtime.bus.publish(topic(realtime.lobby.id), RoomEvent.of(event).pack())
    await eventually(lambda: bool(session.closes))
    assert session.closes == [CloseReason.SLOW_CONSUMER]
    assert session.outbound.closed and session.outbound.overflowed
    assert session.actor.session_id not in room.members


async def test_replies_that_overflow_the_queue_close_the_connection_once(
    realtime: Realtime,
) -> None:
    session = realtime.open(hard_limit=200)  # nothing drains it: a few pongs fill it
    for n in range(20):
        session.actor.tell(Ping(id=n))
    await eventually(lambda: session.actor.mailbox_depth == 0 and bool(session.closes))
    await session.actor.stop()
    assert session.closes == [CloseReason.SLOW_CONSUMER]
    assert session.outbound.overflowed
