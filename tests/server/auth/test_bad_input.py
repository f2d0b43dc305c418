"""Hostile bodies on every auth endpoint: the documented error, nothing stored, still serving.

Each endpoint gets the same sweep: bodies that are not JSON or not an object, each
required field missing, an extra field, each field of the wrong type, 1 MB strings, a
body over the limit; then hostile text (NUL, RTL override, emoji, SQL, script) in each
string field. Hostile *tokens* are in test_tokens.py.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from tests.accounts import DEFAULT_PASSWORD, Account, signup, unique_email
from tests.server.auth.conftest import row_counts

MEGABYTE_STRING = "a" * 1_000_000
NOT_OBJECTS = [
    b"not json",
    b"{'email': 'single@quotes.example'}",
    b'{"email": "\xff\xfe"}',
    b"[" * 5000,
    b"[1, 2]",
    b'"a string"',
    b"null",
    b"42",
]
WRONG_TYPES = [5, 1.5, True, ["x"], {"a": "b"}]
HOSTILE_TEXT = [
    "\x00",
    "a\x00b@example.com",
    "\u202eevil@example.com",
    "😀😀😀",
    "' OR '1'='1' --",
    "Robert'); DROP TABLE users;--",
    "<script>alert(1)</script>",
    "${jndi:ldap://x}",
]
CODES = {"invalid": 400, "unauthorized": 401, "conflict": 409, "locked": 423, "too_large": 413}


@dataclass(frozen=True)
class Endpoint:
    path: str
    body: dict[str, Any]  # well-formed, but refused or harmless on its own
    required: tuple[str, ...] = ()
    authed: bool = False
    method: str = "POST"
    # What hostile text in a string field may answer (beyond 400 invalid).
    hostile_statuses: frozenset[int] = field(default_factory=frozenset)
    hostile_text: bool = True


def endpoints(taken_email: str) -> dict[str, Endpoint]:
    return {
        "register": Endpoint(
            "/api/v1/auth/register",
            {"email": taken_email, "password": DEFAULT_PASSWORD, "name": "Ada"},
            ("email", "password", "name"),
            hostile_statuses=frozenset({409}),
        ),
        "login": Endpoint(
            "/api/v1/auth/login",
            {"email": unique_email(), "password": "Wrong-pass-123", "totp": "123456"},
            ("email", "password"),
            hostile_statuses=frozenset({401, 423}),
        ),
        "refresh": Endpoint(
            "/api/v1/auth/refresh",
            {"refresh_token": "unknown"},
            ("refresh_token",),
            hostile_statuses=frozenset({401}),
        ),
        # Any string is a well-formed optional refresh token here: an unknown one is ignored
        # and the logout succeeds, so only the structural sweep applies.
        "logout": Endpoint(
            "/api/v1/auth/logout", {"refresh_token": "x"}, authed=True, hostile_text=False
        ),
        "logout-all": Endpoint("/api/v1/auth/logout-all", {}, authed=True),
        "otp-request": Endpoint(
            "/api/v1/auth/otp/request", {"phone": "+4915112345678"}, ("phone",)
        ),
        "otp-verify": Endpoint(
            "/api/v1/auth/otp/verify",
            {"phone": "+4915112345678", "code": "123456", "totp": "123456"},
            ("phone", "code"),
            hostile_statuses=frozenset({401}),
        ),
        "password-forgot": Endpoint(
            "/api/v1/auth/password/forgot", {"email": taken_email}, ("email",)
        ),
        "password-reset": Endpoint(
            "/api/v1/auth/password/reset",
            {"email": taken_email, "code": "123456", "new_password": "Brand-new-42!"},
            ("email", "code", "new_password"),
            hostile_statuses=frozenset({401}),
        ),
        "password-change": Endpoint(
            "/api/v1/auth/password/change",
            {"current_password": "Wrong-pass-123", "new_password": "Brand-new-42!"},
            ("current_password", "new_password"),
            authed=True,
            hostile_statuses=frozenset({401, 423}),
        ),
        "2fa-setup": Endpoint("/api/v1/auth/2fa/setup", {}, authed=True),
        "2fa-enable": Endpoint(
            "/api/v1/auth/2fa/enable", {"code": "123456"}, ("code",), authed=True
        ),
        "2fa-disable": Endpoint(
            "/api/v1/auth/2fa/disable",
            {"code": "123456"},
            ("code",),
            authed=True,
            hostile_statuses=frozenset({409}),
        ),
        "me": Endpoint("/api/v1/me", {"name": "Ada"}, authed=True, method="PATCH"),
    }


def structural_cases(endpoint: Endpoint) -> list[tuple[str, bytes, bool]]:
    """(label, raw body, whether `details.fields` must name something): all 400 invalid,
    but the body over the limit, which is 413 too_large."""
    cases = [(f"not an object {raw[:12]!r}", raw, False) for raw in NOT_OBJECTS]
    body = endpoint.body
    for name in endpoint.required:
        without = {k: v for k, v in body.items() if k != name}
        cases.append((f"missing {name}", orjson.dumps(without), True))
    cases.append(("extra field", orjson.dumps({**body, "role": "admin"}), True))
    for name in body:
        for value in WRONG_TYPES + ([None] if name in endpoint.required else []):
            cases.append((f"{name}={value!r}", orjson.dumps({**body, name: value}), True))
        cases.append((f"{name} of 1 MB", orjson.dumps({**body, name: MEGABYTE_STRING}), True))
    oversized = orjson.dumps({**body, "x": "a" * (1024 * 1024)})
    cases.append(("body over the limit", oversized, False))
    return cases


def hostile_cases(endpoint: Endpoint) -> list[tuple[str, bytes]]:
    """Hostile text in each string field but a display name (which may legitimately hold it)."""
    return [
        (f"{name}={text!r}", orjson.dumps({**endpoint.body, name: text}))
        for name in endpoint.body
        if name != "name" and endpoint.hostile_text
        for text in HOSTILE_TEXT
    ]


async def send(client, endpoint: Endpoint, raw: bytes, account: Account):
    headers = {"Content-Type": "application/json"}
    if endpoint.authed:
        headers.update(account.headers)
    data = io.BytesIO(raw)  # aiohttp warns about large raw bytes bodies
    return await client.request(endpoint.method, endpoint.path, data=data, headers=headers)


@pytest.mark.parametrize("name", list(endpoints("x@example.com")))
async def test_bad_bodies_get_the_documented_error_and_store_nothing(
    client, database, name
) -> None:
    account = await signup(client)
    endpoint = endpoints(account.email)[name]
    before = await row_counts(database)
    for label, raw, names_fields in structural_cases(endpoint):
        response = await send(client, endpoint, raw, account)
        error = (await response.json())["error"]
        expected = 413 if label == "body over the limit" else 400
        assert (response.status, CODES[error["code"]]) == (expected, expected), (name, label)
        if names_fields:
            assert error["details"]["fields"], (name, label)
    for label, raw in hostile_cases(endpoint):
        response = await send(client, endpoint, raw, account)
        error = (await response.json())["error"]
        allowed = {400} | endpoint.hostile_statuses
        assert response.status in allowed, (name, label, error)
        assert CODES[error["code"]] == response.status, (name, label)
    assert await row_counts(database) == before, name
    assert (await client.get("/health")).status == 200
    assert (await client.get("/api/v1/me", headers=account.headers)).status == 200


@pytest.mark.parametrize("name", ["Ada\x00", "\u202eAda", "\u2066Ada", " ", "x" * 101])
async def test_patch_me_refuses_control_characters_and_keeps_the_old_name(client, name) -> None:
    account = await signup(client, name="Ada")
    response = await client.patch("/api/v1/me", json={"name": name}, headers=account.headers)
    assert response.status == 400
    assert "name" in (await response.json())["error"]["details"]["fields"]
    me = await client.get("/api/v1/me", headers=account.headers)
    assert (await me.json())["name"] == "Ada"


async def test_an_empty_body_is_fine_where_every_field_is_optional(client) -> None:
    account = await signup(client)
    setup = await client.post("/api/v1/auth/2fa/setup", headers=account.headers)
    assert setup.status == 200
    logout = await client.post("/api/v1/auth/logout", headers=account.headers)
    assert logout.status == 204
