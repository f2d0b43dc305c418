"""A room's history as a cursor-paginated list: back from the newest, or forward from a seq.

`GET /api/v1/rooms/{id}/messages` serves it. The first request picks the window with
`before_seq` and `after_seq`; every page after that is asked for with the opaque cursor the
previous one handed out, like every other list. The cursor holds what the next page needs
and nothing the caller could not ask for by hand: the direction, the `seq` at the edge of
the page served, and (paging forward) the `before_seq` bound the walk started with, so the
window stays the same from the first page to the last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from storage import messages
from storage.message_records import StoredMessage
from storage.pagination import Page, bad_cursor, decode_cursor, encode_cursor

Direction = Literal["back", "forward"]

_SEQ = re.compile(r"^[0-9]{1,18}$")  # what `before_seq` and `after_seq` accept


@dataclass(frozen=True, slots=True)
class Window:
    """Which messages a page is taken from: below `before_seq`, above `after_seq`.

    With `after_seq` the page is the oldest of the window and the walk goes forward;
    without it, the newest, and the walk goes back.
    """

    before_seq: int | None = None
    after_seq: int | None = None

    @property
    def direction(self) -> Direction:
        return "back" if self.after_seq is None else "forward"

    def next_cursor(self, served: list[StoredMessage]) -> str:
        """The cursor of the page that follows `served` (not empty) in this direction."""
        if self.direction == "back":
            return encode_cursor("back", str(served[0].seq), "")
        bound = "" if self.before_seq is None else str(self.before_seq)
        return encode_cursor("forward", str(served[-1].seq), bound)

    @classmethod
    def from_cursor(cls, cursor: str) -> Window:
        """The window a `next_cursor` stands for.

        Raises:
            Invalid: `cursor` is not one this list handed out.
        """
        direction, edge, bound = decode_cursor(cursor, 3)
        if not _SEQ.match(edge) or not (bound == "" or _SEQ.match(bound)):
            raise bad_cursor()
        if direction == "back" and bound == "":
            return cls(before_seq=int(edge))
        if direction == "forward":
            return cls(before_seq=int(bound) if bound else None, after_seq=int(edge))
        raise bad_cursor()


async def page(
    session: AsyncSession, room_id: str, window: Window, *, limit: int
) -> Page[StoredMessage]:
    """Up to `limit` messages of `window`, in ascending `seq`, and the cursor of the next
    page in the window's direction (None when nothing more lies that way)."""
    found = await messages.page(
        session,
        room_id,
        before_seq=window.before_seq,
        after_seq=window.after_seq,
        limit=limit,
    )
    more = found.more and bool(found.items)
    return Page(found.items, window.next_cursor(found.items) if more else None)
