"""Teams, members and invitations: /api/v1/teams/*, /api/v1/invitations/*."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this module's routes (filled in by its issue)."""
