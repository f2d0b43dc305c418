"""Per-account lockout after failed logins, and per-IP rate limits on every auth endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from storage.models import User
from tests.accounts import signup, unique_email

LOGIN = "/api/v1/auth/login"
WRONG = "Wrong-pass-123"


async def fail_logins(client, email: str, times: int) -> list[int]:
    statuses = []
    for _ in range(times):
        response = await client.post(LOGIN, json={"email": email, "password": WRONG})
        statuses.append(response.status)
    return statuses


async def test_five_failures_lock_the_account_even_against_the_right_password(client) -> None:
    account = await signup(client)
    assert await fail_logins(client, account.email, 5) == [401] * 5
    locked = await client.post(LOGIN, json={"email": account.email, "password": account.password})
    assert locked.status == 423
    assert (await locked.json())["error"]["code"] == "locked"


async def test_the_lock_ends_after_its_time(client, database) -> None:
    account = await signup(client)
    await fail_logins(client, account.email, 5)
    async with database.sessions.begin() as session:
        await session.execute(
            update(User).values(locked_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    response = await client.post(LOGIN, json={"email": account.email, "password": account.password})
    assert response.status == 200


async def test_failures_older_than_fifteen_minutes_do_not_count(client, database) -> None:
    account = await signup(client)
    await fail_logins(client, account.email, 4)
    async with database.sessions.begin() as session:
        await session.execute(
            update(User).values(failed_window_start=datetime.now(UTC) - timedelta(minutes=16))
        )
    assert await fail_logins(client, account.email, 4) == [401] * 4
    response = await client.post(LOGIN, json={"email": account.email, "password": account.password})
    assert response.status == 200


async def test_a_successful_login_resets_the_count(client) -> None:
    account = await signup(client)
    await fail_logins(client, account.email, 4)
    assert (
        await client.post(LOGIN, json={"email": account.email, "password": account.password})
    ).status == 200
    assert await fail_logins(client, account.email, 4) == [401] * 4
    assert (
        await client.post(LOGIN, json={"email": account.email, "password": account.password})
    ).status == 200


async def test_an_unknown_email_locks_the_same_way_so_lockout_reveals_nothing(client) -> None:
    stranger = unique_email()
    assert await fail_logins(client, stranger, 6) == [401] * 5 + [423]


async def test_lockout_is_per_account(client) -> None:
    victim, bystander = await signup(client), await signup(client)
    await fail_logins(client, victim.email, 5)
    response = await client.post(
        LOGIN, json={"email": bystander.email, "password": bystander.password}
    )
    assert response.status == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/auth/login", {"email": "a@example.com", "password": "x"}),
        ("/api/v1/auth/register", {}),
        ("/api/v1/auth/refresh", {"refresh_token": "x"}),
        ("/api/v1/auth/logout", {}),
        ("/api/v1/auth/logout-all", {}),
        ("/api/v1/auth/otp/request", {"email": "a@example.com"}),
        ("/api/v1/auth/otp/verify", {}),
        ("/api/v1/auth/password/forgot", {"email": "a@example.com"}),
        ("/api/v1/auth/password/reset", {}),
        ("/api/v1/auth/password/change", {}),
        ("/api/v1/auth/2fa/setup", {}),
        ("/api/v1/auth/2fa/enable", {}),
        ("/api/v1/auth/2fa/disable", {}),
    ],
)
async def test_every_auth_endpoint_is_rate_limited_per_ip_with_retry_after(
    make_client, path, body
) -> None:
    client = await make_client(auth_rate_limit=3, auth_rate_window=60)
    for _ in range(3):
        assert (await client.post(path, json=body)).status != 429
    limited = await client.post(path, json=body)
    assert limited.status == 429
    assert (await limited.json())["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert (await client.get("/health")).status == 200


async def test_rate_limits_are_shared_across_instances_through_redis(make_client) -> None:
    first = await make_client(auth_rate_limit=2)
    second = await make_client(auth_rate_limit=2)
    body = {"email": "a@example.com"}
    assert (await first.post("/api/v1/auth/password/forgot", json=body)).status == 202
    assert (await first.post("/api/v1/auth/password/forgot", json=body)).status == 202
    assert (await second.post("/api/v1/auth/password/forgot", json=body)).status == 429


async def test_rate_limits_work_in_process_without_redis(make_client) -> None:
    client = await make_client(auth_rate_limit=1, redis_url=None)
    body = {"email": "a@example.com", "password": "Wrong-pass-123"}
    assert (await client.post(LOGIN, json=body)).status == 401
    limited = await client.post(LOGIN, json=body)
    assert limited.status == 429
    assert "Retry-After" in limited.headers
