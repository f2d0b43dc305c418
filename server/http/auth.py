"""Accounts and authentication: /api/v1/auth/*, /api/v1/me."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this module's routes (filled in by its issue)."""
