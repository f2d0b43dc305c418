"""The database stops for real: REST answers 503 `unavailable`, a `join` is answered, not
crashed, and both work again once it is back.

The suite's PostgreSQL is shared by every test, so this one runs an app on a PostgreSQL of
its own (tests/services.py) and stops that server with `pg_ctl -m immediate`, dropping
every connection at once, as a crash or a failover would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from storage import migrate
from storage.db import Database
from tests.accounts import signup
from tests.server.ws.helpers import connect, receive
from tests.server.ws.test_ws_hostile import session_restarts
from tests.services import PostgresServer


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A migrated PostgreSQL for this test alone, free to stop and start again."""
    server = PostgresServer()
    server.start()
    migrate.upgrade(server.url)
    yield server
    server.destroy()


async def flush(url: str) -> None:
    """Make what was committed durable: the server runs with `synchronous_commit=off`, and
    an immediate stop would lose the last commits, the room among them."""
    database = Database(url, pool_size=1)
    try:
        async with database.autocommit.connect() as connection:
            await connection.execute(text("CHECKPOINT"))
    finally:
        await database.close()


async def test_a_join_while_the_database_is_down_is_unavailable_and_works_once_it_is_back(
    make_client, own_postgres
):
    client = await make_client(database_url=own_postgres.url)
    ada = await signup(client)
    teams = await (await client.get("/api/v1/teams", headers=ada.headers)).json()
    made = await client.post(
        f"/api/v1/teams/{teams['items'][0]['id']}/rooms", json={"name": "den"}, headers=ada.headers
    )
    room_id = (await made.json())["id"]
    ws = await connect(client, ada)
    await flush(own_postgres.url)

    await asyncio.to_thread(own_postgres.stop)
    await ws.send_json({"type": "join", "room": room_id, "id": "j1"})
    error = await receive(ws, "error", timeout=30)  # the driver's connect timeout is 5 s
    assert (error["code"], error["re"]) == ("unavailable", "j1"), error
    await ws.send_json({"type": "ping", "id": "alive"})
    assert await receive(ws, "pong") == {"type": "pong", "re": "alive"}
    assert session_restarts(client) == 0, "the session was not crashed and restarted"

    await asyncio.to_thread(own_postgres.start)
    answers = []
    for attempt in range(3):  # the first may meet a pooled connection of the dead server
        await ws.send_json({"type": "join", "room": room_id, "id": attempt})
        reply = await receive(ws, timeout=30)
        answers.append(reply)
        if reply["type"] == "joined":
            break
    assert answers[-1]["type"] == "joined", answers
    assert all(a["code"] == "unavailable" for a in answers[:-1]), answers
    assert session_restarts(client) == 0
    await ws.close()


async def test_rest_answers_503_unavailable_while_the_database_is_down_and_200_after(
    make_client, own_postgres
):
    client = await make_client(database_url=own_postgres.url)
    ada = await signup(client)
    await flush(own_postgres.url)

    await asyncio.to_thread(own_postgres.stop)
    for method, path, body in (
        ("GET", "/api/v1/teams", None),
        ("POST", "/api/v1/auth/login", {"email": ada.email, "password": ada.password}),
    ):
        response = await client.request(method, path, json=body, headers=ada.headers)
        assert response.status == 503, (path, await response.text())
        assert (await response.json())["error"]["code"] == "unavailable"
        assert response.headers["Retry-After"] == "1"

    await asyncio.to_thread(own_postgres.start)
    statuses = []
    for _ in range(3):  # the first may meet a pooled connection of the dead server
        statuses.append((await client.get("/api/v1/teams", headers=ada.headers)).status)
        if statuses[-1] == 200:
            break
    assert statuses[-1] == 200, statuses
    assert set(statuses[:-1]) <= {503}, statuses
