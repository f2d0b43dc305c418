"""Locust scenarios: a REST user and a websocket chat user (locust 2.x).

    make run    # in another terminal
    locust -f loadtests/locustfile.py --headless -u 20 -r 10 -t 20s --host http://127.0.0.1:8080

Accounts are registered and logged in through the API (POST /auth/register, /auth/login),
a few per locust process, and shared by the simulated users: the auth endpoints allow
only AUTH_RATE_LIMIT requests per client IP per minute (30 by default), and every locust
user comes from 127.0.0.1. Set LOCUST_ACCOUNTS to change how many are made.

- `RestUser`: GET /me, the teams, the rooms of the account's team, a room's history.
- `ChatUser`: one websocket per user (header auth), joins its account's room, sends a
  message and reads until both its `ack` and its own `message` event arrive; both
  latencies are reported as `WS send→ack` and `WS send→message`.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import gevent.lock
import websocket
from locust import HttpUser, User, between, task
from locust.clients import HttpSession

ACCOUNTS = int(os.environ.get("LOCUST_ACCOUNTS", "4"))
PASSWORD = "Locust-load-2026!"  # noqa: S105 - a throwaway account's password
API = "/api/v1"


@dataclass(frozen=True)
class Account:
    """A registered, logged-in user with a team and a room of its own."""

    email: str
    token: str
    team_id: str
    room_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _checked(response: Any, status: int) -> Any:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.url}: {response.status_code} "
            f"{response.text[:200]}"
        )
    return response.json() if response.content else None


def signup(client: HttpSession) -> Account:
    """Register, log in, find the personal team and create a room in it."""
    email = f"locust-{uuid.uuid4().hex[:12]}@example.com"
    body = {"email": email, "password": PASSWORD, "name": email.split("@")[0]}
    _checked(client.post(f"{API}/auth/register", json=body), 201)
    login = {"email": email, "password": PASSWORD}
    tokens = _checked(client.post(f"{API}/auth/login", json=login), 200)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    teams = _checked(client.get(f"{API}/teams", headers=headers), 200)["items"]
    team_id = teams[0]["id"]
    room = {"name": "locust", "assistant": "off"}
    created = _checked(
        client.post(
            f"{API}/teams/{team_id}/rooms",
            json=room,
            headers=headers,
            name=f"{API}/teams/[id]/rooms",
        ),
        201,
    )
    return Account(email, tokens["access_token"], team_id, created["id"])


class AccountPool:
    """`ACCOUNTS` accounts made on first use, handed out round-robin (greenlet-safe)."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.accounts: list[Account] = []
        self._lock = gevent.lock.Semaphore()
        self._turn = itertools.count()

    def take(self, client: HttpSession) -> Account:
        with self._lock:
            index = next(self._turn) % self.size
            if index >= len(self.accounts):
                self.accounts.append(signup(client))
                index = len(self.accounts) - 1
            return self.accounts[index]


POOL = AccountPool(ACCOUNTS)


class RestUser(HttpUser):
    """Reads what a chat client reads over REST."""

    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.account = POOL.take(self.client)
        self.client.headers.update(self.account.headers)

    @task(3)
    def me(self) -> None:
        self.client.get(f"{API}/me")

    @task(2)
    def teams(self) -> None:
        self.client.get(f"{API}/teams")

    @task(2)
    def rooms(self) -> None:
        self.client.get(f"{API}/teams/{self.account.team_id}/rooms", name=f"{API}/teams/[id]/rooms")

    @task(2)
    def history(self) -> None:
        self.client.get(
            f"{API}/rooms/{self.account.room_id}/messages?limit=20",
            name=f"{API}/rooms/[id]/messages",
        )


class ChatUser(User):
    """One websocket: join the account's room, then send and wait for ack and echo."""

    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        host = str(self.host)  # --host is required by this scenario
        http = HttpSession(host, self.environment.events.request, self)
        self.account = POOL.take(http)
        url = host.replace("http", "ws", 1) + "/ws"
        started = time.perf_counter()
        self.ws = websocket.create_connection(
            url, header=[f"Authorization: Bearer {self.account.token}"], timeout=10
        )
        self._until(lambda frame: frame.get("type") == "ready")
        self.ws.send(json.dumps({"type": "join", "room": self.account.room_id}))
        self._until(lambda frame: frame.get("type") == "joined")
        self._report("WS connect+join", started)

    def on_stop(self) -> None:
        self.ws.close()

    def _until(self, wanted: Any) -> dict[str, Any]:
        """Read frames until one satisfies `wanted`; an error frame raises."""
        while True:
            frame: dict[str, Any] = json.loads(self.ws.recv())
            if frame.get("type") == "error":
                raise RuntimeError(f"server error frame: {frame}")
            if wanted(frame):
                return frame

    def _report(self, name: str, started: float, error: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type="WS",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=error,
            context={},
        )

    @task
    def send_and_receive(self) -> None:
        client_id = uuid.uuid4().hex
        frame = {
            "type": "send",
            "room": self.account.room_id,
            "body": "hello from locust",
            "client_id": client_id,
            "id": client_id,
        }
        started = time.perf_counter()
        seen: set[str] = set()
        try:
            self.ws.send(json.dumps(frame))
            while len(seen) < 2:
                got = self._until(lambda f: f.get("client_id") == client_id)
                if got["type"] in seen:
                    continue
                seen.add(got["type"])
                self._report(f"WS send→{got['type']}", started)
        except (websocket.WebSocketException, OSError, RuntimeError) as exc:
            self._report("WS send→ack", started, exc)
            self.stop()  # the connection is unusable; locust starts no new one
