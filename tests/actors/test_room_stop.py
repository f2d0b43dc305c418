"""A room that stops without draining answers every send it still holds: none waits for ever."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from actors import Supervisor
from actors.room import RoomActor
from actors.room_messages import Deleted, Post, RoomMessage, Tick
from actors.supervisor import RestartPolicy
from errors import NotFound, Unavailable
from storage.bus import MemoryBus
from storage.cache import Cache
from storage.db import Database
from storage.kv import MemoryKeyValue
from storage.message_store import SqlMessageStore
from storage.messages import Appended, Author, NewMessage
from storage.presence import MemoryPresence
from storage.room_lists import RoomListCache
from tests import seed


async def make_room(
    database: Database, fault: Callable[[str, RoomMessage], None] | None = None
) -> tuple[RoomActor, Callable[[str], tuple[Post, asyncio.Future[Appended]]]]:
    ada, _, lobby = await seed.user_team_room(database)
    store = SqlMessageStore(database, RoomListCache(Cache(MemoryKeyValue())))
    room = RoomActor(lobby.id, store=store, bus=MemoryBus(), presence=MemoryPresence(), fault=fault)
    author = Author.user(ada.id, ada.name)

    def post(body: str) -> tuple[Post, asyncio.Future[Appended]]:
        reply: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        return Post(NewMessage(lobby.id, author, body, client_id=body), reply), reply

    return room, post


async def answers(replies: list[asyncio.Future[Appended]]) -> list[BaseException | Appended]:
    async with asyncio.timeout(5):  # before the fix, these never came
        return await asyncio.gather(*replies, return_exceptions=True)


async def test_sends_still_queued_when_the_room_is_deleted_get_not_found(database) -> None:
    room, post = await make_room(database)
    room.start()
    accepted, accepted_reply = post("accepted")  # joins the pending list before Deleted
    queued, queued_reply = post("queued")  # still in the mailbox behind Deleted
    room.tell(accepted)
    room.tell(Deleted())
    room.tell(queued)
    outcomes = await answers([accepted_reply, queued_reply])
    await room.wait_stopped()
    assert all(isinstance(outcome, NotFound) for outcome in outcomes), outcomes


async def test_sends_still_queued_when_the_supervisor_gives_up_get_unavailable(database) -> None:
    def crash_on_tick(room_id: str, message: RoomMessage) -> None:
        if isinstance(message, Tick):
            raise RuntimeError("crashed on purpose")

    room, post = await make_room(database, crash_on_tick)
    supervisor = Supervisor("rooms", policy=RestartPolicy(max_restarts=0, within=10.0))
    supervisor.start()
    supervisor.add(room)
    try:
        queued = [post(f"queued-{n}") for n in range(3)]
        room.tell(Tick())  # crashes the room; no restart is allowed
        for message, _ in queued:
            room.tell(message)
        outcomes = await answers([reply for _, reply in queued])
        await room.wait_stopped()
    finally:
        await supervisor.stop(drain=False)
    assert all(type(outcome) is Unavailable for outcome in outcomes), outcomes
