"""Rooms and message history: /api/v1/teams/{team_id}/rooms, /api/v1/rooms/*."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this module's routes (filled in by its issue)."""
