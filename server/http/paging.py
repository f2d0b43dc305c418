"""Query parameters of cursor-paginated lists (`limit`, `cursor`) and integer positions.

docs/protocol.md: `?limit=` defaults to 50 and must lie in 1..200; anything else, like a
malformed integer, is 400 `invalid` naming the parameter.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from errors import Invalid
from storage.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page

_DIGITS = re.compile(r"^[0-9]{1,18}$")  # fits a BIGINT; no sign, no spaces, no exponents


def _invalid(name: str, reason: str) -> Invalid:
    return Invalid(f"{name}: {reason}", details={"fields": {name: reason}})


def int_param(request: web.Request, name: str) -> int | None:
    """The non-negative integer `?name=`, or None when absent. Raises Invalid otherwise."""
    raw = request.query.get(name)
    if raw is None:
        return None
    if not _DIGITS.match(raw):
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
