"""Group commit across rooms: the batches of every room that arrive while one commit is
in flight go out together in the next, as one transaction.

Each room already batches its own sends; this batches the rooms. Under load an instance
then pays one commit per cycle instead of one per room and cycle. `append_many` orders
its row locks by room id, so combined batches cannot deadlock with each other or with
other instances. A combined batch that fails (one room deleted, say) is retried room by
room, so one room's trouble never fails another room's sends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from actors.ports import MessageStore
from storage.messages import Appended, NewMessage, StoredMessage
from storage.rooms import RoomRecord

logger = logging.getLogger(__name__)

_Waiting = tuple[list[NewMessage], "asyncio.Future[list[Appended]]"]


class GroupCommit:
    """A `MessageStore` that combines concurrent `append_many` calls into one."""

    def __init__(self, store: MessageStore) -> None:
        self._store = store
        self._waiting: list[_Waiting] = []
        self._flusher: asyncio.Task[None] | None = None

    async def append_many(self, messages: Sequence[NewMessage]) -> list[Appended]:
        future: asyncio.Future[list[Appended]] = asyncio.get_running_loop().create_future()
        self._waiting.append((list(messages), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="group commit")
        return await future

    async def _flush(self) -> None:
        try:
            await self._flush_all()
        except asyncio.CancelledError:
            for _, future in self._waiting:
                future.cancel()  # the senders learn; nothing waits forever
            raise

    async def _flush_all(self) -> None:
        while self._waiting:
            pending, self._waiting = self._waiting, []
            if len(pending) == 1:
                await self._commit_alone(pending[0])
                continue
            combined = [message for batch, _ in pending for message in batch]
            try:
                results = await self._store.append_many(combined)
            except Exception:  # noqa: BLE001 - retried room by room just below
                logger.warning("combined commit of %d batches failed; retrying each", len(pending))
                for waiting in pending:
                    await self._commit_alone(waiting)
                continue
            start = 0
            for batch, future in pending:
                if not future.done():
                    future.set_result(results[start : start + len(batch)])
                start += len(batch)

    async def _commit_alone(self, waiting: _Waiting) -> None:
        batch, future = waiting
        try:
            results = await self._store.append_many(batch)
        except Exception as exc:  # noqa: BLE001 - the room that sent it handles it
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(results)

    async def events_between(self, room_id: str, after: int, upto: int) -> list[dict[str, Any]]:
        return await self._store.events_between(room_id, after, upto)

    async def room(self, room_id: str) -> RoomRecord | None:
        return await self._store.room(room_id)

    async def rooms(self, room_ids: Sequence[str]) -> dict[str, RoomRecord]:
        return await self._store.rooms(room_ids)

    async def recent(self, room_id: str, upto: int, limit: int) -> list[StoredMessage]:
        return await self._store.recent(room_id, upto, limit)
