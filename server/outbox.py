"""Outgoing mail and SMS behind one small interface, so tests and development can read them.

`DevOutbox` logs each message and keeps it in the outbox table. An SMTP implementation
(aiosmtplib, when `SMTP_URL` is set) plugs in behind the same `Outbox` protocol.
"""

from __future__ import annotations

import logging
from typing import Protocol

from storage import outbox
from storage.db import Database

logger = logging.getLogger(__name__)


class Outbox(Protocol):
    async def send_email(self, to: str, subject: str, body: str) -> None: ...

    async def send_sms(self, to: str, body: str) -> None: ...


class DevOutbox:
    """Development delivery: a log line and a row in `outbox`, nothing leaves the machine."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def send_email(self, to: str, subject: str, body: str) -> None:
        async with self._database.sessions.begin() as session:
            await outbox.add(session, channel="email", destination=to, subject=subject, body=body)
        logger.info("outbox: email to=%s subject=%r", to, subject)

    async def send_sms(self, to: str, body: str) -> None:
        async with self._database.sessions.begin() as session:
            await outbox.add(session, channel="sms", destination=to, subject="", body=body)
        logger.info("outbox: sms to=%s", to)
