"""POST /auth/password/change: the calling session keeps working, every other one ends."""

from __future__ import annotations

from server.state import REVOCATIONS
from tests.accounts import signup
from tests.server.auth.conftest import eventually_equal

CHANGE, LOGIN, REFRESH, ME = (
    "/api/v1/auth/password/change",
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/me",
)
NEW_PASSWORD = "Brand-new-secret-42"


async def test_change_keeps_the_calling_session_and_revokes_the_others(client) -> None:
    caller = await signup(client)
    other = await (
        await client.post(LOGIN, json={"email": caller.email, "password": caller.password})
    ).json()
    revoked: list[str] = []
    client.app[REVOCATIONS].register(revoked.append)
    response = await client.post(
        CHANGE,
        json={"current_password": caller.password, "new_password": NEW_PASSWORD},
        headers=caller.headers,
    )
    assert response.status == 204
    await eventually_equal(revoked, [caller.id])
    assert revoked == [caller.id]
    assert (await client.get(ME, headers=caller.headers)).status == 200
    rotated = await client.post(REFRESH, json={"refresh_token": caller.refresh_token})
    assert rotated.status == 200
    new_access = (await rotated.json())["access_token"]
    assert (await client.get(ME, headers={"Authorization": f"Bearer {new_access}"})).status == 200
    other_headers = {"Authorization": f"Bearer {other['access_token']}"}
    assert (await client.get(ME, headers=other_headers)).status == 401
    assert (
        await client.post(REFRESH, json={"refresh_token": other["refresh_token"]})
    ).status == 401
    old = await client.post(LOGIN, json={"email": caller.email, "password": caller.password})
    assert old.status == 401
    new = await client.post(LOGIN, json={"email": caller.email, "password": NEW_PASSWORD})
    assert new.status == 200


async def test_the_carried_session_still_falls_to_a_later_logout_all(client) -> None:
    caller = await signup(client)
    await client.post(
        CHANGE,
        json={"current_password": caller.password, "new_password": NEW_PASSWORD},
        headers=caller.headers,
    )
    assert (await client.post("/api/v1/auth/logout-all", headers=caller.headers)).status == 204
    assert (await client.get(ME, headers=caller.headers)).status == 401


async def test_change_with_a_wrong_current_password_is_401_and_changes_nothing(client) -> None:
    caller = await signup(client)
    response = await client.post(
        CHANGE,
        json={"current_password": "Not-my-password-1", "new_password": NEW_PASSWORD},
        headers=caller.headers,
    )
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"
    assert (await client.get(ME, headers=caller.headers)).status == 200
    login = await client.post(LOGIN, json={"email": caller.email, "password": caller.password})
    assert login.status == 200


async def test_change_to_a_weak_password_is_400_invalid(client) -> None:
    caller = await signup(client)
    response = await client.post(
        CHANGE,
        json={"current_password": caller.password, "new_password": "iloveyou123"},
        headers=caller.headers,
    )
    assert response.status == 400
    assert "new_password" in (await response.json())["error"]["details"]["fields"]


async def test_change_needs_a_valid_access_token(client) -> None:
    response = await client.post(
        CHANGE, json={"current_password": "x" * 12, "new_password": NEW_PASSWORD}
    )
    assert response.status == 401
