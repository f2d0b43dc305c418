"""Access tokens: reading `exp` without verifying, and a login-and-refresh provider."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from .errors import TokenError

#: Returns a fresh access token each time it is called.
TokenProvider = Callable[[], Awaitable[str]]


def token_claims(token: str) -> dict[str, Any]:
    """The JWT payload, NOT verified (the server does that); {} when it is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    padded = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def token_expiry(token: str) -> float | None:
    """The token's `exp` (seconds since the epoch), or None when it has none."""
    exp = token_claims(token).get("exp")
    return float(exp) if isinstance(exp, int | float) else None


def token_lifetime(token: str) -> float | None:
    """`exp - iat`, the token's whole lifetime, when both are present."""
    claims = token_claims(token)
    exp, iat = claims.get("exp"), claims.get("iat")
    if isinstance(exp, int | float) and isinstance(iat, int | float):
        return float(exp - iat)
    return None


class PasswordLogin:
    """A token provider: logs in with email and password once, then refreshes.

    Every call after the first spends the newest refresh token through
    `POST /api/v1/auth/refresh`, so each call gives a fresh access token. Calls are
    serialized: a refresh token is never presented twice (that would revoke the sign-in).

        provider = PasswordLogin("https://chat.example.com", "ada@example.com", "secret")
        client = Client("https://chat.example.com", provider)

    Raises (from a call):
        TokenError: the login or the refresh was refused (`status` says how).
    """

    def __init__(
        self,
        base_url: str,
        email: str,
        password: str,
        *,
        totp: str | None = None,
        refresh_token: str | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """`refresh_token`: a sign-in's newest refresh token to start from instead of
        logging in (the login happens only if there is none)."""
        self._base = base_url.rstrip("/")
        self._email = email
        self._password = password
        self._totp = totp
        self._session = session
        self._own_session = session is None
        self._refresh_token = refresh_token
        self._lock = asyncio.Lock()
        self.calls = 0

    async def __call__(self) -> str:
        async with self._lock:
            self.calls += 1
            if self._refresh_token is None:
                body: dict[str, str] = {"email": self._email, "password": self._password}
                if self._totp is not None:
                    body["totp"] = self._totp
                return await self._tokens("/api/v1/auth/login", body)
            return await self._tokens(
                "/api/v1/auth/refresh", {"refresh_token": self._refresh_token}
            )

    async def _tokens(self, path: str, body: dict[str, str]) -> str:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.post(self._base + path, json=body) as response:
            if response.status != 200:
                text = await response.text()
                raise TokenError(f"{path} answered {response.status}: {text}", response.status)
            tokens = await response.json()
        self._refresh_token = str(tokens["refresh_token"])
        return str(tokens["access_token"])

    async def close(self) -> None:
        """Close the HTTP session this provider made (not one it was given)."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None
