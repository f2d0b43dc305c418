"""Access JWTs and opaque refresh tokens: issue, verify, rotate, revoke.

An access token is an HS256 JWT with `sub`, `jti`, `ver` (the user's token version),
`iat`, `exp`, `typ` ("access") and `sid`, the refresh family it belongs to, so that
logout and password change know which session is calling. It is verified with an
explicit algorithm list, so `alg: none` and algorithm confusion fail.

A refresh token is 256 random bits, stored only as its SHA-256 (high entropy makes a
slow hash pointless, and a plain digest can be looked up). Each use spends it and
issues the next one of the same family; presenting a spent one revokes the family.

Revoking a family (logout, reuse of a spent refresh token) also revokes the access tokens
whose `sid` names it. That record is the family's refresh tokens in the database; the
key-value store only caches it (storage/revoked_families.py), so an emptied Redis or a
restarted process never brings a revoked token back.

The websocket's check (`authenticate(..., cached=True)`) keeps what it read in the process
(server/auth/verified.py), so a reconnect storm costs neither a database nor a Redis round
trip per connection; every revocation heard on the control stream invalidates it first.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from errors import Unauthorized
from server.auth.revocation import Revocations
from server.auth.verified import VerifiedCache
from server.config import Settings
from storage import tokens as refresh_store
from storage import users
from storage.db import Database
from storage.kv import KeyValue
from storage.revoked_families import RevokedFamilies
from storage.tokens import Spent
from storage.users import UserRecord

ALGORITHM = "HS256"
_REQUIRED = ["sub", "jti", "ver", "iat", "exp", "typ", "sid"]
_CARRY = "auth:carry:"  # jti → token version it stays valid for (password change)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """The verified claims of an access token."""

    user_id: str
    jti: str
    version: int
    issued_at: int
    expires_at: int
    session_id: str

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> AccessClaims:
        fields = (payload["sub"], payload["jti"], payload["sid"])
        numbers = (payload["ver"], payload["iat"], payload["exp"])
        if payload["typ"] != "access" or not all(isinstance(f, str) for f in fields):
            raise Unauthorized("not an access token")
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
            raise Unauthorized("malformed token")
        return cls(fields[0], fields[1], numbers[0], numbers[1], numbers[2], fields[2])

    def remaining(self) -> float:
        return max(1.0, self.expires_at - time.time())


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int

    def to_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
        }


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class TokenService:
    """Issues and checks tokens; revocations are kept in the database, cached in `kv`."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        kv: KeyValue,
        revocations: Revocations | None = None,
    ) -> None:
        """`revocations` hears of every sign-in revoked here (to close its websockets)."""
        self._key = settings.secret_key
        self._access_ttl = settings.access_token_ttl
        self._refresh_ttl = timedelta(seconds=settings.refresh_token_ttl)
        self._database = database
        self._kv = kv
        # A revoked family's access tokens are all expired one access TTL after it.
        self._families = RevokedFamilies(database, kv, revoked_ttl=settings.access_token_ttl)
        self._revocations = revocations or Revocations()
        self.verified = VerifiedCache(
            ttl=settings.auth_cache_ttl,
            revoked_ttl=settings.access_token_ttl,
            max_entries=settings.auth_cache_size,
        )
        self._revocations.listen(self.verified.forget)

    def encode_access(self, user: UserRecord, session_id: str) -> str:
        now = int(time.time())
        payload = {
            "sub": user.id,
            "jti": uuid.uuid4().hex,
            "ver": user.token_version,
            "iat": now,
            "exp": now + self._access_ttl,
            "typ": "access",
            "sid": session_id,
        }
        return jwt.encode(payload, self._key, algorithm=ALGORITHM)

    def _verify_signature(self, token: str) -> AccessClaims:
        try:
            payload = jwt.decode(
                token, self._key, algorithms=[ALGORITHM], options={"require": _REQUIRED}
            )
            return AccessClaims.parse(payload)
        except (jwt.PyJWTError, KeyError, TypeError):
            raise Unauthorized("invalid or expired token") from None

    async def decode_access(self, token: str) -> AccessClaims:
        """Signature, expiry, claims and the revocation of its family; not the user's token
        version.

        Raises:
            Unauthorized: anything about the token is wrong.
        """
        claims = self._verify_signature(token)
        if await self._families.is_revoked(claims.session_id):
            raise Unauthorized("token revoked")
        return claims

    async def authenticate(
        self, token: str, *, cached: bool = False
    ) -> tuple[UserRecord, AccessClaims]:
        """The user an access token speaks for, once its token version still holds.

        `cached`: answer from what this process read before when it still holds (the
        websocket's check; the record's name may then be up to the cache's TTL old).

        Raises:
            Unauthorized: bad token, revoked token, or the user is gone.
        """
        if cached and self.verified.usable():
            epoch = self.verified.epoch
            user, claims = await self._authenticate_cached(token, epoch)
            if epoch == self.verified.epoch:
                return user, claims
            # A revocation arrived while we read: what we read may predate it; read again.
        claims = await self.decode_access(token)
        user = await self._token_holder(claims.user_id)
        await self._check_version(claims, user)
        return user, claims

    async def _authenticate_cached(self, token: str, epoch: int) -> tuple[UserRecord, AccessClaims]:
        claims = self.verified.signed(token)
        if claims is None:
            claims = self._verify_signature(token)
            self.verified.remember_signed(token, claims)
        revoked = self.verified.family_revoked(claims.session_id)
        if revoked is None:
            revoked = await self._families.is_revoked(claims.session_id)
            self.verified.remember_family(claims.session_id, revoked, epoch)
        if revoked:
            raise Unauthorized("token revoked")
        user = self.verified.user(claims.user_id)
        # Another token version than the one kept: a newer token may have been issued
        # since (after a logout-all whose event is still on its way), so ask again.
        if user is None or user.token_version != claims.version:
            user = await self._token_holder(claims.user_id)
            self.verified.remember_user(user, epoch)
        await self._check_version(claims, user)
        return user, claims

    async def _token_holder(self, user_id: str) -> UserRecord:
        """The user, read without a transaction or the ORM (every connect may ask)."""
        async with self._database.autocommit.connect() as connection:
            user = await users.token_holder(connection, user_id)
        if user is None:
            raise Unauthorized("invalid or expired token")
        return user

    async def _check_version(self, claims: AccessClaims, user: UserRecord) -> None:
        """The token's version is the user's, or it was carried over the last bump."""
        if claims.version != user.token_version and not await self._carried(claims, user):
            raise Unauthorized("token revoked")

    async def _carried(self, claims: AccessClaims, user: UserRecord) -> bool:
        carried = await self._kv.get(_CARRY + claims.jti)
        return carried is not None and carried.decode() == str(user.token_version)

    async def issue(self, user: UserRecord) -> TokenPair:
        """A new session: an access token and the first refresh token of a new family."""
        family_id = str(uuid.uuid4())
        async with self._database.sessions.begin() as session:
            refresh = await self._add_refresh(session, user.id, family_id)
            await self._prune(session)
        return TokenPair(self.encode_access(user, family_id), refresh, self._access_ttl)

    async def rotate(self, refresh_token: str) -> TokenPair:
        """Spend `refresh_token` and issue the next pair of its family, in one transaction.

        Raises:
            Unauthorized: unknown, expired or already spent (the family is then revoked).
        """
        # No raising inside the transaction: a detected reuse must commit its revocation.
        refresh = None
        async with self._database.sessions.begin() as session:
            spent = await refresh_store.spend(
                session, hash_refresh_token(refresh_token), datetime.now(UTC)
            )
            user = await users.get(session, spent.user_id) if spent.user_id else None
            if spent.outcome is Spent.OK and user is not None and spent.family_id:
                refresh = await self._add_refresh(session, user.id, spent.family_id)
                await self._prune(session)
        if spent.outcome is Spent.REUSED and spent.user_id and spent.family_id:
            await self._revoked(spent.user_id, spent.family_id)
        if refresh is None or user is None or spent.family_id is None:
            raise Unauthorized("invalid refresh token")
        return TokenPair(self.encode_access(user, spent.family_id), refresh, self._access_ttl)

    async def _add_refresh(self, session: AsyncSession, user_id: str, family_id: str) -> str:
        refresh = secrets.token_urlsafe(32)
        await refresh_store.add(
            session,
            user_id=user_id,
            family_id=family_id,
            token_hash=hash_refresh_token(refresh),
            expires_at=datetime.now(UTC) + self._refresh_ttl,
        )
        return refresh

    async def _prune(self, session: AsyncSession) -> None:
        """Writers keep the table bounded: refresh tokens long past expiry go."""
        before = datetime.now(UTC) - timedelta(seconds=self._access_ttl)
        await refresh_store.prune_expired(session, before)

    async def carry_access(self, claims: AccessClaims, version: int) -> None:
        """Keep one access token valid across a token version bump (password change)."""
        await self._kv.set(_CARRY + claims.jti, str(version).encode(), ttl=claims.remaining())

    async def revoke_session(self, user_id: str, family_id: str) -> None:
        """Revoke a sign-in: its refresh tokens, the access tokens carrying its `sid`, and
        the websockets opened with them (on every instance)."""
        async with self._database.sessions.begin() as session:
            await refresh_store.revoke_family(session, family_id, datetime.now(UTC))
        await self._revoked(user_id, family_id)

    async def _revoked(self, user_id: str, family_id: str) -> None:
        """After the commit: the cache first (no request may pass any more), then sockets."""
        await self._families.revoked(family_id)
        await self._revocations.sign_in_revoked(user_id, family_id)

    async def revoke_refresh_token(self, user_id: str, refresh_token: str) -> None:
        """Revoke the family of `refresh_token` when it belongs to `user_id`; else nothing."""
        async with self._database.sessions.begin() as session:
            found = await refresh_store.family_of(session, hash_refresh_token(refresh_token))
        if found is not None and found[0] == user_id:
            await self.revoke_session(user_id, found[1])
