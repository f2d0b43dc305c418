"""TOTP second factor: setup with a QR code, enable with backup codes, check, disable.

A TOTP code is accepted for the current 30-second step and one step either side, and
only for a step later than the last one used, so a code never works twice.

Backup codes are 80 random bits each and stored as their SHA-256: at that entropy a
slow hash adds nothing against guessing, while a plain digest can be matched in one
indexed query instead of ten argon2 verifications per login.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyotp
import segno

from errors import Conflict, Invalid
from storage import totp as totp_store
from storage.db import Database
from storage.users import UserRecord

ISSUER = "Roomcast"
STEP = 30
BACKUP_CODES = 10
_TOTP_CODE = re.compile(r"^[0-9]{6}$")
_CODE_WRONG = {"fields": {"code": "wrong or already used"}}
_CODE_NO_SETUP = {"fields": {"code": "no pending setup"}}


@dataclass(frozen=True, slots=True)
class Setup:
    secret: str
    otpauth_uri: str
    qr_svg: str

    def to_json(self) -> dict[str, Any]:
        return {"secret": self.secret, "otpauth_uri": self.otpauth_uri, "qr_svg": self.qr_svg}


def matching_step(secret: str, code: str, now: float) -> int | None:
    """The step within ±1 of `now` whose code is `code`, if any."""
    totp = pyotp.TOTP(secret, interval=STEP)
    current = int(now) // STEP
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_backup_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(10)).decode().lower()
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def hash_backup_code(code: str) -> str:
    normalized = re.sub(r"[\s-]", "", code).lower()
    return hashlib.sha256(normalized.encode("utf-8", "surrogatepass")).hexdigest()


def qr_svg(uri: str) -> str:
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", xmldecl=False, scale=4)
    return buffer.getvalue().decode()


class TwoFactor:
    """The 2FA lifecycle of an account and the check login uses."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def setup(self, user: UserRecord) -> Setup:
        """A fresh secret awaiting `enable`. Raises Conflict when 2FA is already on."""
        secret = pyotp.random_base32()
        async with self._database.sessions.begin() as session:
            if not await totp_store.set_pending_secret(session, user.id, secret):
                raise Conflict("two-factor authentication is already enabled")
        label = user.email or user.phone or user.id
        uri = pyotp.TOTP(secret, interval=STEP).provisioning_uri(name=label, issuer_name=ISSUER)
        return Setup(secret, uri, qr_svg(uri))

    async def enable(self, user: UserRecord, code: str) -> list[str]:
        """Confirm the pending secret with a TOTP code; returns ten single-use backup codes.

        Raises:
            Conflict: already enabled. Invalid: no setup yet, or the code is wrong.
        """
        codes = [new_backup_code() for _ in range(BACKUP_CODES)]
        async with self._database.sessions.begin() as session:
            state = await totp_store.state(session, user.id)
            if state is not None and state.enabled:
                raise Conflict("two-factor authentication is already enabled")
            if state is None or state.secret is None:
                raise Invalid("code: call /auth/2fa/setup first", details=_CODE_NO_SETUP)
            step = matching_step(state.secret, code.strip(), time.time())
            if step is None or not await totp_store.advance_step(session, user.id, step):
                raise Invalid("code: wrong or already used", details=_CODE_WRONG)
            await totp_store.enable(session, user.id, [hash_backup_code(c) for c in codes])
        return codes

    async def disable(self, user: UserRecord, code: str) -> None:
        """Turn 2FA off, given a valid TOTP or backup code.

        Raises:
            Conflict: 2FA is not enabled. Invalid: the code is wrong.
        """
        async with self._database.sessions() as session:
            state = await totp_store.state(session, user.id)
        if state is None or not state.enabled:
            raise Conflict("two-factor authentication is not enabled")
        if not await self.accept(user.id, code):
            raise Invalid("code: wrong or already used", details=_CODE_WRONG)
        async with self._database.sessions.begin() as session:
            await totp_store.disable(session, user.id)

    async def accept(self, user_id: str, code: str) -> bool:
        """Spend a TOTP code (six digits) or a backup code; False when it is not valid now."""
        code = code.strip()
        async with self._database.sessions.begin() as session:
            if not _TOTP_CODE.match(code):
                digest = hash_backup_code(code)
                return await totp_store.spend_backup_code(
                    session, user_id, digest, datetime.now(UTC)
                )
            state = await totp_store.state(session, user_id)
            if state is None or not state.enabled or state.secret is None:
                return False
            step = matching_step(state.secret, code, time.time())
            return step is not None and await totp_store.advance_step(session, user_id, step)
