"""The websocket's token check keeps users and sign-ins in the process; a revocation on one
instance makes another refuse the token as soon as the control stream delivered it."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from storage.db import Database
from tests.accounts import Account, signup
from tests.server.multi.test_sign_in_revocation import another_sign_in
from tests.server.ws.helpers import closed_with, connect, receive

LOGOUT, LOGOUT_ALL, CHANGE = (
    "/api/v1/auth/logout",
    "/api/v1/auth/logout-all",
    "/api/v1/auth/password/change",
)


async def auth_frame(client: Any, token: str) -> int | None:
    """Open a websocket and send an `auth` frame: None when `ready` came, else the close
    code."""
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "auth", "token": token})
    message = await ws.receive(timeout=5)
    if message.type is aiohttp.WSMsgType.TEXT and message.json()["type"] == "ready":
        await ws.close()
        return None
    return ws.close_code


async def warmed(instance: Any, account: Account) -> aiohttp.ClientWebSocketResponse:
    """A live socket of `account` on `instance`, whose check has now cached the user and the
    sign-in; the auth frame path passes too."""
    ws = await connect(instance.client(), account)
    assert await auth_frame(instance.client(), account.access_token) is None
    return ws


async def two_sign_ins_warm_on_b(instances: Any) -> tuple[Any, Any, Account, Account, Any, Any]:
    """Instances A and B, a user signed up on A and signed in a second time, and each
    sign-in's live socket on B, whose check has them cached."""
    a, b = await instances(2)
    first = await signup(a.client())
    second = await another_sign_in(a.client(), first)
    first_ws = await warmed(b, first)
    second_ws = await warmed(b, second)
    return a, b, first, second, first_ws, second_ws


async def test_logout_on_a_makes_b_refuse_the_sign_ins_token_once_delivered(
    instances, database: Database
) -> None:
    a, b, phone, laptop, phone_ws, _laptop_ws = await two_sign_ins_warm_on_b(instances)

    assert (await a.client().post(LOGOUT, headers=phone.headers)).status == 204

    # The socket's close is B's control reader having handled the revocation.
    assert await closed_with(phone_ws, timeout=5) == 4401, b.log_tail()
    assert await auth_frame(b.client(), phone.access_token) == 4401
    assert await auth_frame(b.client(), laptop.access_token) is None


async def test_logout_all_on_a_makes_b_refuse_every_token_of_the_user_once_delivered(
    instances, database: Database
) -> None:
    a, b, phone, laptop, phone_ws, _laptop_ws = await two_sign_ins_warm_on_b(instances)

    assert (await a.client().post(LOGOUT_ALL, headers=phone.headers)).status == 204

    assert await closed_with(phone_ws, timeout=5) == 4401, b.log_tail()
    for account in (phone, laptop):
        assert await auth_frame(b.client(), account.access_token) == 4401
    fresh = await another_sign_in(a.client(), phone)
    assert await auth_frame(b.client(), fresh.access_token) is None, "a new sign-in works"


async def test_password_change_on_a_makes_b_refuse_the_other_sign_ins_once_delivered(
    instances, database: Database
) -> None:
    a, b, caller, other, _caller_ws, other_ws = await two_sign_ins_warm_on_b(instances)

    body = {"current_password": caller.password, "new_password": "Brand-new-secret-42"}
    assert (await a.client().post(CHANGE, json=body, headers=caller.headers)).status == 204

    assert await closed_with(other_ws, timeout=5) == 4401, b.log_tail()
    assert await auth_frame(b.client(), other.access_token) == 4401
    assert await auth_frame(b.client(), caller.access_token) is None, "the caller's is carried"
    ready_ws = await connect(b.client(), caller)
    await ready_ws.send_json({"type": "ping", "id": "p"})
    assert (await receive(ready_ws, "pong"))["re"] == "p"


async def test_a_new_name_on_a_is_in_bs_ready_once_delivered(instances, database: Database) -> None:
    a, b = await instances(2)
    account = await signup(a.client())
    await warmed(b, account)

    body = {"name": "Renamed"}
    renamed = await a.client().patch("/api/v1/me", json=body, headers=account.headers)
    assert renamed.status == 200

    # B kept the old record for half a minute; the event makes it read the new one.
    names = []
    async with asyncio.timeout(10):
        while not names or names[-1] != "Renamed":
            ws = await b.client().ws_connect("/ws", headers=account.headers)
            names.append((await receive(ws, "ready"))["user"]["name"])
            await ws.close()
    assert names[-1] == "Renamed"
