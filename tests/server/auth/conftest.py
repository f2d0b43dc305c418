"""Helpers for the auth tests: generous rate limits, mailed codes, TOTP codes, row counts."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import replace

import pyotp
import pytest
from sqlalchemy import func, select

from server.config import Settings
from storage import outbox
from storage.db import Database
from storage.models import BackupCode, OtpCode, OutboxMessage, RefreshToken, Team, User

_TABLES = (User, Team, RefreshToken, OtpCode, BackupCode, OutboxMessage)
_CODE = re.compile(r"\b([0-9]{6})\b")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Rate limits out of the way; the tests that exercise them set their own."""
    return replace(settings, auth_rate_limit=100_000)


async def row_counts(database: Database) -> dict[str, int]:
    """How many rows each auth-related table holds, to show a request stored nothing."""
    counts = {}
    async with database.sessions() as session:
        for model in _TABLES:
            result = await session.execute(select(func.count()).select_from(model))
            counts[model.__tablename__] = int(result.scalar_one())
    return counts


async def messages_to(database: Database, destination: str) -> list[outbox.OutboxRecord]:
    async with database.sessions() as session:
        return await outbox.list_for(session, destination)


async def mailed_code(database: Database, destination: str, *, nth: int = 1) -> str:
    """The six-digit code in the `nth` message sent to `destination` (delivery is a job)."""
    async with asyncio.timeout(5):
        while len(sent := await messages_to(database, destination)) < nth:
            await asyncio.sleep(0.02)
    found = _CODE.search(sent[nth - 1].body)
    assert found is not None, sent[nth - 1].body
    return found.group(1)


async def settle_totp_step(margin: float = 3.0) -> None:
    """Wait out the end of a 30-second step, so codes made for `now ± 30 s` stay in the
    server's window until they are checked."""
    left = 30 - time.time() % 30
    if left < margin:
        await asyncio.sleep(left + 0.05)


def totp_at(secret: str, offset_steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * offset_steps)


async def setup_secret(client, account) -> str:
    response = await client.post("/api/v1/auth/2fa/setup", headers=account.headers)
    assert response.status == 200
    return (await response.json())["secret"]


async def enable_2fa(client, account) -> tuple[str, list[str]]:
    """Turn 2FA on with the previous step's code, leaving the current and next steps free."""
    await settle_totp_step()
    secret = await setup_secret(client, account)
    response = await client.post(
        "/api/v1/auth/2fa/enable", json={"code": totp_at(secret, -1)}, headers=account.headers
    )
    assert response.status == 200, await response.text()
    return secret, (await response.json())["backup_codes"]


async def eventually_equal(values: list[str], expected: list[str], timeout: float = 5.0) -> None:
    """Revocations travel the control stream (through Redis): wait for them to arrive."""
    async with asyncio.timeout(timeout):
        while values != expected:
            await asyncio.sleep(0.02)
