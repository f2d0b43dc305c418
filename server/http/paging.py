"""Query parameters of cursor-paginated lists (`limit`, `cursor`) and integer positions.

docs/protocol.md: `?limit=` defaults to 50 and must lie in 1..200; anything else, like a
malformed integer, is 400 `invalid` naming the parameter.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from errors import Invalid
from server.http.operation import Param
from storage.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page

# The whole value (fullmatch: no trailing newline) fits a BIGINT; no sign, spaces, exponents.
_DIGITS = re.compile(r"[0-9]{1,18}")
_MAX_INT = 10**18 - 1

# The parameters as the OpenAPI document shows them, with the bounds enforced below.
LIMIT = Param(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    "How many items at most.",
)
CURSOR = Param(
    "cursor",
    {"type": "string"},
    "Opaque: the `next_cursor` of the previous page, as it was given.",
)
BEFORE_SEQ = Param(
    "before_seq",
    {"type": "integer", "minimum": 0, "maximum": _MAX_INT},
    "Messages just below this `seq` (paging back).",
)
AFTER_SEQ = Param(
    "after_seq",
    {"type": "integer", "minimum": 0, "maximum": _MAX_INT},
    "Messages just above this `seq` (paging forward).",
)


def _invalid(name: str, reason: str) -> Invalid:
    return Invalid(f"{name}: {reason}", details={"fields": {name: reason}})


def int_param(request: web.Request, name: str) -> int | None:
    """The non-negative integer `?name=`, or None when absent. Raises Invalid otherwise."""
    raw = request.query.get(name)
    if raw is None:
        return None
    if not _DIGITS.fullmatch(raw):
        raise _invalid(name, "a non-negative integer")
    return int(raw)


def limit_param(request: web.Request) -> int:
    """`?limit=`, 1 to 200, 50 when absent. Raises Invalid outside that range."""
    limit = int_param(request, "limit")
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise _invalid("limit", f"between 1 and {MAX_LIMIT}")
    return limit


def cursor_param(request: web.Request) -> str | None:
    """`?cursor=` as given (the list that issued it decodes it), None when absent or empty."""
    return request.query.get("cursor") or None


def page_json(page: Page[Any]) -> dict[str, Any]:
    """`{items, next_cursor}` of a page whose items have `to_json()`."""
    return {"items": [item.to_json() for item in page.items], "next_cursor": page.next_cursor}
