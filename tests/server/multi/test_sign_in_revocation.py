"""Revoking one sign-in (a refresh family) on one instance closes its websockets on all."""

from __future__ import annotations

from storage.db import Database
from tests.accounts import Account, signup
from tests.server.ws.helpers import closed_with, connect, receive

LOGIN, REFRESH, LOGOUT, ME = (
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/auth/logout",
    "/api/v1/me",
)


async def another_sign_in(client, account: Account) -> Account:
    """The same user signed in a second time: a sign-in (refresh family) of its own."""
    response = await client.post(LOGIN, json={"email": account.email, "password": account.password})
    assert response.status == 200
    tokens = await response.json()
    return Account(
        account.id,
        account.email,
        account.name,
        account.password,
        tokens["access_token"],
        tokens["refresh_token"],
    )


async def still_open(ws) -> bool:
    await ws.send_json({"type": "ping", "id": "alive?"})
    return (await receive(ws, "pong"))["re"] == "alive?"


async def test_logout_on_a_closes_that_sign_ins_sockets_on_b_and_no_others(
    instances, database: Database
) -> None:
    a, b = await instances(2)
    phone = await signup(a.client())
    laptop = await another_sign_in(a.client(), phone)
    phone_ws = await connect(b.client(), phone)
    laptop_ws = await connect(b.client(), laptop)

    assert (await a.client().post(LOGOUT, headers=phone.headers)).status == 204

    assert await closed_with(phone_ws, timeout=5) == 4401, b.log_tail()
    assert await still_open(laptop_ws)
    assert (await b.client().get(ME, headers=laptop.headers)).status == 200
    assert (await b.client().get(ME, headers=phone.headers)).status == 401


async def test_refresh_token_reuse_on_a_revokes_the_sign_ins_access_and_sockets_on_b(
    instances, database: Database
) -> None:
    a, b = await instances(2)
    account = await signup(a.client())
    other = await another_sign_in(a.client(), account)
    ws = await connect(b.client(), account)
    other_ws = await connect(b.client(), other)
    rotated = await a.client().post(REFRESH, json={"refresh_token": account.refresh_token})
    assert rotated.status == 200
    fresh = (await rotated.json())["access_token"]
    assert (await b.client().get(ME, headers={"Authorization": f"Bearer {fresh}"})).status == 200

    reused = await a.client().post(REFRESH, json={"refresh_token": account.refresh_token})
    assert reused.status == 401

    assert await closed_with(ws, timeout=5) == 4401, b.log_tail()
    for access in (account.access_token, fresh):
        headers = {"Authorization": f"Bearer {access}"}
        assert (await b.client().get(ME, headers=headers)).status == 401
    assert await still_open(other_ws), "the user's other sign-in is untouched"
    assert (await b.client().get(ME, headers=other.headers)).status == 200
