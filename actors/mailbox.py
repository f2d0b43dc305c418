"""A mailbox: the part of `asyncio.Queue` an actor uses, for a fraction of its memory.

One deque and at most one waiting getter (only the actor's own task receives). Every
live websocket session has an actor, so this is paid per connection: `asyncio.Queue`
keeps three deques and an Event (about 3 KiB), this keeps one deque.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    """FIFO with `put_nowait` (never refuses: the actor enforces its own bound) and `get`.

    The deque exists only while something waits in it (an empty deque is about 600
    bytes, and most sessions' mailboxes are empty most of the time).
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[T] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def qsize(self) -> int:
        return len(self._items) if self._items is not None else 0

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: T) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> T:
        """The oldest item. Raises IndexError when empty."""
        items = self._items
        if items is None:
            raise IndexError("get from an empty mailbox")
        item = items.popleft()
        if not items:
            self._items = None
        return item

    async def get(self) -> T:
        """The oldest item, waiting for one; only one task may wait at a time."""
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.get_nowait()
