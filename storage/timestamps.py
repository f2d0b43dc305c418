"""Timestamps as the wire shows them: RFC 3339, UTC, millisecond precision, a `Z` suffix."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(moment: datetime) -> str:
    """`2026-11-21T10:00:00.000Z`: fixed width, so these strings sort as the moments do."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given; storage hands out UTC-aware ones")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
