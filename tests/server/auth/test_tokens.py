"""Access and refresh tokens: rotation, reuse detection, logout, logout-all, hostile tokens."""

from __future__ import annotations

import base64
import time
import uuid

import jwt
import orjson
import pytest
from sqlalchemy import update

from errors import Unauthorized
from server.state import REVOCATIONS
from server.ws import verify_token
from storage.models import RefreshToken
from tests.accounts import signup
from tests.server.auth.conftest import eventually_equal

REFRESH, LOGOUT, LOGOUT_ALL = (
    "/api/v1/auth/refresh",
    "/api/v1/auth/logout",
    "/api/v1/auth/logout-all",
)
ME = "/api/v1/me"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def refresh(client, token: str):
    return await client.post(REFRESH, json={"refresh_token": token})


async def test_refresh_rotates_the_pair_and_spends_the_old_refresh_token(client) -> None:
    account = await signup(client)
    response = await refresh(client, account.refresh_token)
    assert response.status == 200
    pair = await response.json()
    assert pair["token_type"] == "bearer"
    assert pair["refresh_token"] != account.refresh_token
    assert (await client.get(ME, headers=bearer(pair["access_token"]))).status == 200
    assert (await refresh(client, pair["refresh_token"])).status == 200


async def test_presenting_a_spent_refresh_token_revokes_its_whole_family(client) -> None:
    account = await signup(client)
    second = await (await refresh(client, account.refresh_token)).json()
    reused = await refresh(client, account.refresh_token)
    assert reused.status == 401
    assert (await reused.json())["error"]["code"] == "unauthorized"
    stolen_branch = await refresh(client, second["refresh_token"])
    assert stolen_branch.status == 401, "the newest token of the family is revoked too"


async def test_reuse_revokes_only_that_family_not_the_users_other_sessions(client) -> None:
    account = await signup(client)
    other = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    other_refresh = (await other.json())["refresh_token"]
    await refresh(client, account.refresh_token)
    await refresh(client, account.refresh_token)
    assert (await refresh(client, other_refresh)).status == 200


async def test_unknown_or_expired_refresh_tokens_are_401(client, database) -> None:
    account = await signup(client)
    assert (await refresh(client, "not-a-token")).status == 401
    async with database.sessions.begin() as session:
        await session.execute(update(RefreshToken).values(expires_at=RefreshToken.created_at))
    assert (await refresh(client, account.refresh_token)).status == 401


async def test_logout_revokes_the_access_token_and_its_refresh_family(client) -> None:
    account = await signup(client)
    response = await client.post(LOGOUT, headers=account.headers)
    assert response.status == 204
    assert (await client.get(ME, headers=account.headers)).status == 401
    assert (await refresh(client, account.refresh_token)).status == 401


async def test_logout_with_a_refresh_token_revokes_that_family_as_well(client) -> None:
    account = await signup(client)
    other = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    other_pair = await other.json()
    response = await client.post(
        LOGOUT, json={"refresh_token": other_pair["refresh_token"]}, headers=account.headers
    )
    assert response.status == 204
    assert (await refresh(client, other_pair["refresh_token"])).status == 401
    assert (await client.get(ME, headers=bearer(other_pair["access_token"]))).status == 401


async def test_logout_ignores_a_refresh_token_of_someone_else(client) -> None:
    alice, bob = await signup(client), await signup(client)
    response = await client.post(
        LOGOUT, json={"refresh_token": bob.refresh_token}, headers=alice.headers
    )
    assert response.status == 204
    assert (await refresh(client, bob.refresh_token)).status == 200


async def test_logout_all_invalidates_every_existing_token_and_notifies_listeners(
    client,
) -> None:
    account = await signup(client)
    second = await (
        await client.post(
            "/api/v1/auth/login", json={"email": account.email, "password": account.password}
        )
    ).json()
    revoked: list[str] = []
    client.app[REVOCATIONS].register(revoked.append)
    response = await client.post(LOGOUT_ALL, headers=account.headers)
    assert response.status == 204
    for access in (account.access_token, second["access_token"]):
        assert (await client.get(ME, headers=bearer(access))).status == 401
    for refresh_token in (account.refresh_token, second["refresh_token"]):
        assert (await refresh(client, refresh_token)).status == 401
    await eventually_equal(revoked, [account.id])
    assert revoked == [account.id]
    fresh = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    fresh_access = (await fresh.json())["access_token"]
    assert (await client.get(ME, headers=bearer(fresh_access))).status == 200


async def test_the_websocket_layer_verifies_an_access_token_not_a_refresh_token(client) -> None:
    account = await signup(client)
    verified = await verify_token(client.app, account.access_token)
    assert verified.user.id == account.id
    with pytest.raises(Unauthorized):
        await verify_token(client.app, account.refresh_token)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


def _claims(account, **changes) -> dict:
    now = int(time.time())
    claims = {
        "sub": account.id,
        "jti": uuid.uuid4().hex,
        "ver": 0,
        "iat": now,
        "exp": now + 600,
        "typ": "access",
        "sid": str(uuid.uuid4()),
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def hostile_token(kind: str, account, key: str) -> str:
    """A token that must not open anything, of the given kind."""
    if kind == "garbage":
        return "not.a.jwt"
    if kind == "refresh_as_access":
        return account.refresh_token
    if kind == "alg_none":
        return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(account))}."
    if kind == "other_key":
        return jwt.encode(_claims(account), "another-secret-key" * 3, algorithm="HS256")
    if kind == "hs512_same_key":
        return jwt.encode(_claims(account), key, algorithm="HS512")
    changes = {
        "expired": {"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600},
        "wrong_typ": {"typ": "refresh"},
        "no_jti": {"jti": None},
        "no_ver": {"ver": None},
        "string_ver": {"ver": "0"},
        "old_version": {"ver": -1},
        "unknown_user": {"sub": str(uuid.uuid4())},
    }[kind]
    return jwt.encode(_claims(account, **changes), key, algorithm="HS256")


AUTHED_ENDPOINTS = [
    ("GET", ME),
    ("PATCH", ME),
    ("POST", LOGOUT),
    ("POST", LOGOUT_ALL),
    ("POST", "/api/v1/auth/password/change"),
    ("POST", "/api/v1/auth/2fa/setup"),
    ("POST", "/api/v1/auth/2fa/enable"),
    ("POST", "/api/v1/auth/2fa/disable"),
]
KINDS = [
    "garbage",
    "refresh_as_access",
    "alg_none",
    "other_key",
    "hs512_same_key",
    "expired",
    "wrong_typ",
    "no_jti",
    "no_ver",
    "string_ver",
    "old_version",
    "unknown_user",
]


@pytest.mark.parametrize("kind", KINDS)
async def test_hostile_access_tokens_are_401_on_every_authenticated_endpoint(
    client, settings, kind
) -> None:
    account = await signup(client)
    headers = bearer(hostile_token(kind, account, settings.secret_key))
    for method, path in AUTHED_ENDPOINTS:
        response = await client.request(method, path, json={}, headers=headers)
        assert response.status == 401, (method, path)
        assert (await response.json())["error"]["code"] == "unauthorized"
    assert (await client.get(ME, headers=account.headers)).status == 200


async def test_a_well_formed_token_signed_with_our_key_is_accepted(client, settings) -> None:
    account = await signup(client)
    forged_by_us = jwt.encode(_claims(account), settings.secret_key, algorithm="HS256")
    assert (await client.get(ME, headers=bearer(forged_by_us))).status == 200


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer \u202e\u00e9\u00e9", "Token abc"],
)
async def test_missing_or_malformed_authorization_headers_are_401(client, header) -> None:
    response = await client.get(ME, headers={"Authorization": header} if header else {})
    assert response.status == 401


async def test_an_access_token_is_not_a_refresh_token(client) -> None:
    account = await signup(client)
    response = await refresh(client, account.access_token)
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"
