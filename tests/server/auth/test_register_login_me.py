"""POST /auth/register, POST /auth/login, GET and PATCH /me, roles and the admin guard."""

from __future__ import annotations

import asyncio
from argparse import Namespace

import pytest
from aiohttp import web
from sqlalchemy import select

import run
from server.app import create_app
from server.auth.guard import CURRENT_USER, require_admin
from server.config import Argon2Params
from server.http.json import json_response
from server.state import PASSWORDS
from storage.models import Team, TeamMember, User
from tests.accounts import DEFAULT_PASSWORD, signup, unique_email

REGISTER, LOGIN, ME = "/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/me"


async def test_register_creates_the_user_and_their_personal_team(client, database) -> None:
    email = unique_email()
    response = await client.post(
        REGISTER, json={"email": email, "password": DEFAULT_PASSWORD, "name": "Ada"}
    )
    assert response.status == 201
    user = await response.json()
    assert set(user) == {"id", "email", "name", "role", "totp_enabled", "created_at"}
    assert (user["email"], user["name"], user["role"]) == (email, "Ada", "user")
    assert user["totp_enabled"] is False
    assert user["created_at"].endswith("Z")
    async with database.sessions() as session:
        row = await session.get(User, user["id"])
        membership = (
            await session.execute(
                select(TeamMember, Team).join(Team).where(TeamMember.user_id == user["id"])
            )
        ).one()
    assert row is not None
    assert row.password_hash is not None and row.password_hash.startswith("$argon2id$")
    assert DEFAULT_PASSWORD not in row.password_hash
    assert membership[0].role == "owner"
    assert membership[1].personal is True


async def test_register_normalises_the_email_and_refuses_it_twice_with_409(client) -> None:
    first = await client.post(
        REGISTER,
        json={"email": "  Ada.Lovelace@Example.COM ", "password": DEFAULT_PASSWORD, "name": "Ada"},
    )
    assert first.status == 201
    assert (await first.json())["email"] == "ada.lovelace@example.com"
    again = await client.post(
        REGISTER,
        json={"email": "ADA.LOVELACE@example.com", "password": DEFAULT_PASSWORD, "name": "Bo"},
    )
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "conflict"


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Short-1", "at least 10 characters"),
        ("x" * 257, "at most 256"),
        ("abcdefghijkl", "mix at least two"),
        ("12345678901234", "mix at least two"),
        ("Password123", "too common"),
        ("Qwertyuiop", "too common"),
        ("Good-pass\x07word1", "control characters"),
        ("Good-pass\x00word1", "NUL characters"),
    ],
)
async def test_register_refuses_weak_passwords_naming_the_reason(client, password, reason) -> None:
    response = await client.post(
        REGISTER, json={"email": unique_email(), "password": password, "name": "Ada"}
    )
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == "invalid"
    assert reason in error["details"]["fields"]["password"]


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("", 400),
        ("   ", 400),
        ("x" * 101, 400),
        ("Ada\x00", 400),
        ("Ada\u202eevil", 400),
        ("Ada\n", 201),  # trimmed
        ("Ada 😀", 201),
        ("Robert'); DROP TABLE users;--", 201),
        ("<script>alert(1)</script>", 201),
    ],
)
async def test_register_checks_the_name_and_stores_harmless_text_verbatim(
    client, name, status
) -> None:
    response = await client.post(
        REGISTER, json={"email": unique_email(), "password": DEFAULT_PASSWORD, "name": name}
    )
    assert response.status == status
    if status == 201:
        assert (await response.json())["name"] == name.strip()
    else:
        assert (await response.json())["error"]["details"]["fields"]["name"]


async def test_login_returns_bearer_tokens_that_open_me(client) -> None:
    account = await signup(client, name="Ada")
    response = await client.post(LOGIN, json={"email": account.email, "password": account.password})
    assert response.status == 200
    tokens = await response.json()
    assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 15 * 60
    me = await client.get(ME, headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status == 200
    assert (await me.json())["id"] == account.id


async def test_login_accepts_the_email_in_any_case_and_spacing(client) -> None:
    account = await signup(client)
    response = await client.post(
        LOGIN, json={"email": f"  {account.email.upper()} ", "password": account.password}
    )
    assert response.status == 200


async def test_unknown_email_and_wrong_password_look_the_same_and_cost_the_same(
    client, monkeypatch
) -> None:
    account = await signup(client)
    passwords = client.app[PASSWORDS]
    verified: list[str | None] = []
    real_verify = passwords.verify

    async def counting_verify(stored_hash: str | None, password: str) -> bool:
        verified.append(stored_hash)
        return await real_verify(stored_hash, password)

    monkeypatch.setattr(passwords, "verify", counting_verify)
    wrong = await client.post(LOGIN, json={"email": account.email, "password": "Wrong-pass-123"})
    unknown = await client.post(LOGIN, json={"email": unique_email(), "password": "Wrong-pass-123"})
    assert wrong.status == unknown.status == 401
    assert await wrong.json() == await unknown.json()
    assert (await wrong.json())["error"]["code"] == "unauthorized"
    assert len(verified) == 2, "one argon2 verification on each path"
    assert verified[1] is None, "the unknown email is verified against the dummy hash"


async def test_login_rehashes_the_password_when_the_argon2_parameters_changed(
    make_client, database
) -> None:
    first = await make_client()
    account = await signup(first)
    stronger = Argon2Params(time_cost=2, memory_cost=2048, parallelism=1)
    second = await make_client(argon2=stronger)
    response = await second.post(LOGIN, json={"email": account.email, "password": account.password})
    assert response.status == 200
    async with database.sessions() as session:
        row = await session.get(User, account.id)
    assert row is not None and row.password_hash is not None
    assert "m=2048,t=2,p=1" in row.password_hash


async def test_me_needs_a_token(client) -> None:
    response = await client.get(ME)
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"


async def test_patch_me_renames_and_an_empty_patch_changes_nothing(client) -> None:
    account = await signup(client, name="Ada")
    renamed = await client.patch(ME, json={"name": "  Ada L. "}, headers=account.headers)
    assert renamed.status == 200
    assert (await renamed.json())["name"] == "Ada L."
    unchanged = await client.patch(ME, json={}, headers=account.headers)
    assert unchanged.status == 200
    assert (await unchanged.json())["name"] == "Ada L."
    me = await client.get(ME, headers=account.headers)
    assert (await me.json())["name"] == "Ada L."


async def test_patch_me_refuses_bad_names_and_other_fields(client) -> None:
    account = await signup(client, name="Ada")
    for body in ({"name": ""}, {"name": "x" * 101}, {"name": 5}, {"email": "a@example.com"}):
        response = await client.patch(ME, json=body, headers=account.headers)
        assert response.status == 400, body
        assert (await response.json())["error"]["code"] == "invalid"
    assert (await (await client.get(ME, headers=account.headers)).json())["name"] == "Ada"


async def admin_only(request: web.Request) -> web.Response:
    return json_response({"admin": request[CURRENT_USER].email})


async def test_createsuperuser_makes_an_admin_that_passes_require_admin(
    make_client, settings
) -> None:
    app = create_app(settings)
    app.router.add_get("/test/admin", require_admin(admin_only))
    client = await make_client(app)
    email = unique_email("root")
    args = Namespace(email=email, name="Root", password=DEFAULT_PASSWORD)
    # run.py drives its own event loop, so it runs on a thread of its own here.
    assert await asyncio.to_thread(run._superuser, settings, args) == 0
    admin = await client.post(LOGIN, json={"email": email, "password": DEFAULT_PASSWORD})
    admin_headers = {"Authorization": f"Bearer {(await admin.json())['access_token']}"}
    me = await client.get(ME, headers=admin_headers)
    assert (await me.json())["role"] == "admin"
    assert (await client.get("/test/admin", headers=admin_headers)).status == 200
    user = await signup(client)
    refused = await client.get("/test/admin", headers=user.headers)
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "forbidden"
    assert (await client.get("/test/admin")).status == 401
