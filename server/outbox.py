"""Outgoing mail and SMS behind one small interface, so tests and development can read them.

`DevOutbox` logs each message and keeps it in the outbox table. `SmtpOutbox` (aiosmtplib,
chosen when `SMTP_URL` is set) sends mail for real; SMS has only the development delivery.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

from server.config import Settings
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


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where and how to send: `smtp://user:pass@host:587` (STARTTLS when offered),
    `smtps://user:pass@host:465` (TLS from the start)."""

    hostname: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("SMTP_URL must look like smtp://user:pass@host:587 or smtps://...")
        implicit_tls = parts.scheme == "smtps"
        return cls(
            hostname=parts.hostname,
            port=parts.port or (465 if implicit_tls else 587),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            implicit_tls=implicit_tls,
        )


class SmtpOutbox:
    """Mail through an SMTP server; SMS falls back to `sms_fallback` (development only)."""

    def __init__(
        self, server: SmtpServer, sender: str, sms_fallback: Outbox, *, timeout: float = 30
    ) -> None:
        self._server = server
        self._sender = sender
        self._sms = sms_fallback
        self._timeout = timeout

    async def send_email(self, to: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self._sender, to, subject
        message.set_content(body)
        server = self._server
        await aiosmtplib.send(
            message,
            hostname=server.hostname,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.implicit_tls,
            start_tls=None if not server.implicit_tls else False,
            timeout=self._timeout,
        )
        logger.info("outbox: email sent over smtp to=%s subject=%r", to, subject)

    async def send_sms(self, to: str, body: str) -> None:
        await self._sms.send_sms(to, body)


def make_outbox(settings: Settings, database: Database) -> Outbox:
    """SMTP when `SMTP_URL` is set, the development outbox otherwise."""
    development = DevOutbox(database)
    if not settings.smtp_url:
        return development
    return SmtpOutbox(SmtpServer.from_url(settings.smtp_url), settings.mail_from, development)
