"""Real Roomcast server processes for multi-instance tests: start, kill -9, SIGTERM, restart.

Each `Instance` is `python run.py serve` on a free loopback port, over the suite's
PostgreSQL and Redis (or a Redis Cluster), logging to a file whose tail is attached to the
failure when it does not come up. `InstanceClient` talks to one instance with the same
surface as aiohttp's `TestClient` (`get`, `post`, `ws_connect`, ... on paths), so
`tests.accounts.signup` and `tests.server.ws.helpers` work on it unchanged.

    async def test_b_sees_what_a_did(instances) -> None:
        a, b = await instances(2)
        account = await signup(a.client())
        assert (await b.client().get("/api/v1/teams", headers=account.headers)).status == 200
        await a.kill()                      # SIGKILL: no goodbye to clients, Redis or the DB
        assert await b.ready()

Every process, client and websocket is closed by the fixture, whatever the test's outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import hdrs
from aiohttp.client import _RequestContextManager, _WSRequestContextManager
from yarl import URL

from server.config import generate_secret
from tests.services import RedisCluster, free_port

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0

#: What every instance gets unless a test overrides it: fast hashing, generous limits.
BASE_ENV: Mapping[str, str] = {
    "ENV": "test",
    "HOST": "127.0.0.1",
    "ARGON2_TIME_COST": "1",
    "ARGON2_MEMORY_COST": "1024",
    "ARGON2_PARALLELISM": "1",
    "AUTH_RATE_LIMIT": "100000",
    "WS_FRAMES_PER_SECOND": "1000",
    "WS_BURST": "2000",
    "AI_OFFLINE_DELAY": "0.01",
    "PYTHONUNBUFFERED": "1",  # a killed instance's log holds everything it printed
}

#: Taken from the test run's own environment; Roomcast's settings never are.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")


class InstanceFailed(AssertionError):
    """An instance did not start, or did not stop, as the test expected."""


class InstanceClient:
    """HTTP and websocket client bound to one instance's base URL, like aiohttp's TestClient.

    Responses and websockets are remembered and closed with the client, so a test may
    read `.status` and drop a response without leaking its connection.
    """

    def __init__(self, base_url: str, *, source: str | None = None) -> None:
        """`source`: the local address to connect from (say 127.0.0.2), so that servers
        see distinct client addresses on one machine."""
        self._base = URL(base_url)
        connector = None if source is None else aiohttp.TCPConnector(local_addr=(source, 0))
        # unsafe: keep cookies for an IP address host, as TestClient does.
        self.session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)
        )
        self._responses: list[aiohttp.ClientResponse] = []
        self._websockets: list[aiohttp.ClientWebSocketResponse] = []

    @property
    def host(self) -> str:
        return self._base.host or "127.0.0.1"

    @property
    def port(self) -> int | None:
        return self._base.port

    def make_url(self, path: str) -> URL:
        return self._base.join(URL(path))

    async def _request(self, method: str, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        response = await self.session.request(method, self.make_url(path), **kwargs)
        self._responses.append(response)
        return response

    def request(self, method: str, path: str, **kwargs: Any) -> _RequestContextManager:
        return _RequestContextManager(self._request(method, path, **kwargs))

    def get(self, path: str, **kwargs: Any) -> _RequestContextManager:
        return self.request(hdrs.METH_GET, path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> _RequestContextManager:
        return self.request(hdrs.METH_POST, path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> _RequestContextManager:
        return self.request(hdrs.METH_PUT, path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> _RequestContextManager:
        return self.request(hdrs.METH_PATCH, path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> _RequestContextManager:
        return self.request(hdrs.METH_DELETE, path, **kwargs)

    async def _ws_connect(self, path: str, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
        ws = await self.session.ws_connect(self.make_url(path), **kwargs)
        self._websockets.append(ws)
        return ws

    def ws_connect(self, path: str, **kwargs: Any) -> _WSRequestContextManager:
        return _WSRequestContextManager(self._ws_connect(path, **kwargs))

    async def close(self) -> None:
        for response in self._responses:
            response.close()
        for ws in self._websockets:
            with contextlib.suppress(Exception):  # the instance may be dead already
                await ws.close()
        await self.session.close()


class Instance:
    """One Roomcast server process on a fixed port; it can be killed and started again."""

    def __init__(self, name: str, env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.env = {**env, "PORT": str(self.port), "PUBLIC_URL": f"http://127.0.0.1:{self.port}"}
        self.log = log_dir / f"{name}-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._clients: list[InstanceClient] = []

    def __repr__(self) -> str:
        return f"<Instance {self.name} port={self.port} pid={self.pid}>"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def client(self) -> InstanceClient:
        """A new client on this instance, closed by the fixture at the end of the test."""
        client = InstanceClient(self.url)
        self._clients.append(client)
        return client

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def _spawn(self) -> None:
        with self.log.open("ab") as out:
            out.write(f"--- {self.name} starting at {time.strftime('%X')}\n".encode())
            out.flush()
            self._process = subprocess.Popen(
                [sys.executable, "run.py", "serve"],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C of pytest is the fixture's to pass on
            )

    async def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the process and wait until `/ready` answers 200.

        Raises:
            InstanceFailed: it exited, or was not ready within `timeout`; with its log tail.
        """
        if self.running:
            raise InstanceFailed(f"{self!r} is already running")
        self._spawn()
        await self.wait_ready(timeout)

    async def ready(self) -> bool:
        """Whether `/ready` answers 200 now."""
        async with aiohttp.ClientSession() as session:
            try:
                async with session.get(
                    f"{self.url}/ready", timeout=aiohttp.ClientTimeout(total=2)
                ) as response:
                    return response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

    async def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until `/ready` answers 200. Raises InstanceFailed (with the log tail)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                raise InstanceFailed(
                    f"{self.name} exited with {code} before it was ready:\n{self.log_tail()}"
                )
            if await self.ready():
                return
            await asyncio.sleep(0.05)
        raise InstanceFailed(f"{self.name} not ready within {timeout:.0f} s:\n{self.log_tail()}")

    async def _wait_exit(self, timeout: float) -> int | None:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + timeout
        while process.poll() is None:
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.02)
        return process.returncode

    async def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown hooks run. Waits for the process to be gone."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
        await self._wait_exit(STOP_TIMEOUT)

    async def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM and wait: the exit code (negative: killed by that signal).

        Raises:
            InstanceFailed: still running after `timeout` (it is then killed).
        """
        if self._process is None:
            raise InstanceFailed(f"{self.name} was never started")
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
        code = await self._wait_exit(timeout)
        if code is None:
            await self.kill()
            raise InstanceFailed(
                f"{self.name} still running {timeout:.0f} s after SIGTERM:\n{self.log_tail()}"
            )
        return code

    async def restart(self, timeout: float = START_TIMEOUT) -> None:
        """Kill the process if it runs, then start it again on the same port."""
        await self.kill()
        await self.start(timeout)

    async def close(self) -> None:
        """Close this instance's clients and kill the process (cleanup; never raises)."""
        for client in self._clients:
            with contextlib.suppress(Exception):
                await client.close()
        self._clients.clear()
        await self.kill()


class Instances(Sequence[Instance]):
    """The instances of one test, sharing a database, a Redis and a SECRET_KEY."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self._all: list[Instance] = []

    def __getitem__(self, index: Any) -> Any:
        return self._all[index]

    def __len__(self) -> int:
        return len(self._all)

    def __iter__(self) -> Iterator[Instance]:
        return iter(self._all)

    async def add(self, count: int = 1, **env: object) -> list[Instance]:
        """Start `count` more instances (concurrently), `env` overriding the shared one."""
        overrides = {key: str(value) for key, value in env.items()}
        started = [
            Instance(
                chr(ord("a") + len(self._all) + i),
                {**self.env, **overrides},
                self.log_dir,
            )
            for i in range(count)
        ]
        self._all.extend(started)  # before starting: a failed start is cleaned up too
        outcomes = await asyncio.gather(
            *(instance.start() for instance in started), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return started

    async def close(self) -> None:
        await asyncio.gather(*(instance.close() for instance in self._all))


def instance_env(
    database_url: str,
    redis_url: str,
    *,
    var_dir: Path,
    secret_key: str | None = None,
    redis_cluster: bool = False,
) -> dict[str, str]:
    """The environment shared by a test's instances."""
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    env.update(BASE_ENV)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SECRET_KEY=secret_key or generate_secret(),
        VAR_DIR=str(var_dir),
    )
    if redis_cluster:
        env["REDIS_CLUSTER"] = "1"
    return env


class InstancesFactory:
    """`await instances(n, **env)`: start `n` instances; `redis_cluster=` puts them on one.

    Calling it again in the same test starts more instances of the same group (same
    database, Redis and secret), named on from the previous ones (a, b, c, ...).
    """

    def __init__(self, database_url: str, redis_url: str, root: Path) -> None:
        self._database_url = database_url
        self._redis_url = redis_url
        self._root = root
        self._group: Instances | None = None

    async def __call__(
        self, count: int, *, redis_cluster: RedisCluster | None = None, **env: object
    ) -> Instances:
        if self._group is None:
            self._root.mkdir(parents=True, exist_ok=True)
            shared = instance_env(
                self._database_url,
                redis_cluster.url if redis_cluster else self._redis_url,
                var_dir=self._root,
                redis_cluster=redis_cluster is not None,
            )
            self._group = Instances(shared, self._root)
        elif redis_cluster is not None:
            raise ValueError("choose the Redis on the first call; the group shares one")
        await self._group.add(count, **env)
        return self._group

    async def close(self) -> None:
        if self._group is not None:
            await self._group.close()


@contextlib.asynccontextmanager
async def launched(
    database_url: str, redis_url: str, root: Path
) -> AsyncIterator[InstancesFactory]:
    """An `InstancesFactory` whose processes and clients are all gone on exit."""
    factory = InstancesFactory(database_url, redis_url, root)
    try:
        yield factory
    finally:
        await factory.close()
