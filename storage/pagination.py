"""Opaque keyset cursors and the page they continue, for every cursor-paginated list.

A cursor is the sort key of the last item served, base64url-encoded JSON: clients treat it
as opaque, and a forged one can only move the window, never widen what a caller may read.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

import orjson

from errors import Invalid
from storage.types import unstorable

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_MAX_CURSOR = 512


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list and the cursor of the next one (None on the last page)."""

    items: list[T]
    next_cursor: str | None


def encode_cursor(*key: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def bad_cursor() -> Invalid:
    """The 400 of a cursor that this list did not hand out."""
    return Invalid(
        "cursor: not a cursor of this list", details={"fields": {"cursor": "invalid cursor"}}
    )


def decode_cursor(raw: str, size: int) -> tuple[str, ...]:
    """The `size` strings `encode_cursor` packed into `raw`.

    Raises:
        Invalid: `raw` is not such a cursor.
    """
    if len(raw) > _MAX_CURSOR:
        raise bad_cursor()
    try:
        key = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        raise bad_cursor() from None
    if not isinstance(key, list) or len(key) != size or not all(isinstance(k, str) for k in key):
        raise bad_cursor()
    if any(unstorable(k) for k in key):  # ours never hold them; a query with one would fail
        raise bad_cursor()
    return tuple(key)


def decode_time_cursor(raw: str) -> tuple[datetime, str]:
    """A `(moment, id)` cursor as `time_cursor` wrote it. Raises Invalid when it is not one."""
    moment, ident = decode_cursor(raw, 2)
    try:
        parsed = datetime.fromisoformat(moment)
        # Year 1 at +14:00 parses, but lies before the first moment UTC can hold.
        utc = parsed.astimezone(UTC) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):
        raise bad_cursor() from None
    if utc is None:
        raise bad_cursor()
    return utc, ident


def time_cursor(moment: datetime, ident: str) -> str:
    """A cursor after the item sorted by `(moment, ident)`, exact to the microsecond."""
    return encode_cursor(moment.isoformat(), ident)


def slice_page(
    items: list[T], key: Callable[[T], tuple[str, str]], *, limit: int, cursor: str | None
) -> Page[T]:
    """A page of an in-memory list sorted by `key` (a cached list, say), after `cursor`.

    Raises:
        Invalid: `cursor` is not one this list handed out.
    """
    if cursor is not None:
        after = decode_cursor(cursor, 2)
        items = [item for item in items if key(item) > after]
    served = items[:limit]
    more = len(items) > limit
    return Page(served, encode_cursor(*key(served[-1])) if more else None)
