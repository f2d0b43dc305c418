"""Throwaway PostgreSQL and Redis servers for the test suite, started from the machine's binaries.

PostgreSQL: `initdb` + `pg_ctl` found on PATH or under /usr/lib/postgresql/*/bin, in a temp
dir, on a free loopback port, with trust auth. As root (CI) they run as the `postgres` user,
since PostgreSQL refuses to run as root. Redis: `redis-server` on a free port, nothing on disk.
Redis Cluster: three `redis-server --cluster-enabled yes` masters joined by
`redis-cli --cluster create`. nginx: Debian's `nginx`, run in the foreground with the proxy
settings of deploy/nginx.conf in front of given upstreams.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

DEPLOY_NGINX_CONF = Path(__file__).resolve().parent.parent / "deploy" / "nginx.conf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_pg_bin(name: str) -> str | None:
    """The PostgreSQL binary `name`, newest version first under /usr/lib/postgresql."""
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    found = shutil.which(name)
    if found:
        candidates.insert(0, found)
    return candidates[0] if candidates else None


def _wait_for_port(port: int, deadline: float, what: str) -> None:
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start listening on port {port}")


class PostgresServer:
    """A PostgreSQL cluster of our own in a temp dir; stop() and start() may repeat."""

    def __init__(self) -> None:
        initdb, pg_ctl = find_pg_bin("initdb"), find_pg_bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise RuntimeError(
                "PostgreSQL binaries not found (initdb, pg_ctl); install Debian's 'postgresql'"
            )
        self._initdb, self._pg_ctl = initdb, pg_ctl
        self.port = free_port()
        self._root = Path(tempfile.mkdtemp(prefix="roomcast-pg-"))
        self.data = self._root / "data"
        self._user: str | None = "postgres" if os.geteuid() == 0 else None
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(self._root, entry.pw_uid, entry.pw_gid)
        self._run(
            [
                self._initdb,
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ]
        )

    def _run(self, argv: list[str]) -> None:
        if self._user:
            argv = ["runuser", "-u", self._user, "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, cwd=self._root)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self._root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            [
                self._pg_ctl,
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self._root / "log"),
                "-w",
                "-t",
                "30",
                "start",
            ]
        )
        _wait_for_port(self.port, time.monotonic() + 30, "PostgreSQL")

    def stop(self) -> None:
        self._run([self._pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"])

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self._root, ignore_errors=True)


class RedisServer:
    """A redis-server of our own on a free port, persisting nothing."""

    def __init__(self, *extra: str) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise RuntimeError("redis-server not found; install Debian's 'redis-server'")
        self._binary = binary
        self._extra = extra
        self.port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="roomcast-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                self._binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._dir),
                *self._extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, time.monotonic() + 10, "redis-server")

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


class RedisCluster:
    """A Redis Cluster of three masters (no replicas) on free loopback ports.

    Starting it takes well under a second; `destroy()` kills the nodes and removes their
    files. `url` is one node's address: a cluster client discovers the rest from it.
    """

    MASTERS = 3

    def __init__(self, masters: int = MASTERS) -> None:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if not server or not cli:
            raise RuntimeError(
                "redis-server and redis-cli not found; install Debian's 'redis-server'"
            )
        self._server, self._cli = server, cli
        self._dir = Path(tempfile.mkdtemp(prefix="roomcast-redis-cluster-"))
        self.ports = [free_port() for _ in range(masters)]
        # The cluster bus defaults to port + 10000, which is past 65535 for high ephemeral
        # ports; give each node a free bus port of its own instead (Redis 7+).
        self._bus_ports = [free_port() for _ in range(masters)]
        self._processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    @property
    def urls(self) -> list[str]:
        return [f"redis://127.0.0.1:{port}/0" for port in self.ports]

    def start(self, timeout: float = 30.0) -> None:
        """Start the nodes, assign the slots, and wait until every node says the cluster is ok."""
        deadline = time.monotonic() + timeout
        try:
            for port, bus_port in zip(self.ports, self._bus_ports, strict=True):
                self._processes.append(self._start_node(port, bus_port))
            for port in self.ports:
                self._wait_for_node(port, deadline)
            nodes = [f"127.0.0.1:{port}" for port in self.ports]
            created = subprocess.run(
                [self._cli, "--cluster", "create", *nodes, "--cluster-replicas", "0"]
                + ["--cluster-yes"],
                capture_output=True,
                timeout=max(1.0, deadline - time.monotonic()),
                check=False,
            )
            if created.returncode != 0:
                raise RuntimeError(
                    f"redis-cli --cluster create failed:\n{created.stdout.decode()}"
                    f"{created.stderr.decode()}"
                )
            for port in self.ports:
                self._wait_until_ok(port, deadline)
        except BaseException:
            self.destroy()
            raise

    def _log_tail(self, port: int, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            text = (self._dir / f"node-{port}.log").read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    def _wait_for_node(self, port: int, deadline: float) -> None:
        try:
            _wait_for_port(port, deadline, f"redis-server (cluster node) on {port}")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}:\n{self._log_tail(port)}") from None

    def _start_node(self, port: int, bus_port: int) -> subprocess.Popen[bytes]:
        log = (self._dir / f"node-{port}.log").open("wb")
        with log:
            return subprocess.Popen(
                [
                    self._server,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(self._dir / f"nodes-{port}.conf"),
                    "--port",
                    str(port),
                    "--cluster-port",
                    str(bus_port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self._dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def _cluster_info(self, port: int) -> str:
        answer = subprocess.run(
            [self._cli, "-h", "127.0.0.1", "-p", str(port), "cluster", "info"],
            capture_output=True,
            timeout=5,
            check=False,
        )
        return answer.stdout.decode(errors="replace")

    def _wait_until_ok(self, port: int, deadline: float) -> None:
        info = ""
        while time.monotonic() < deadline:
            info = self._cluster_info(port)
            if "cluster_state:ok" in info:
                return
            time.sleep(0.05)
        raise RuntimeError(f"cluster node {port} never reached cluster_state:ok:\n{info}")

    def destroy(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.kill()
            process.wait()
        self._processes.clear()
        shutil.rmtree(self._dir, ignore_errors=True)


class NginxServer:
    """nginx in front of `upstreams` (`host:port`), configured as deploy/nginx.conf says.

    The shipped file's `server` block is used as it is, with two changes: its upstream
    block lists `upstreams`, and it listens on a free loopback port. Around it go the
    main and `http` settings a packaged nginx.conf would give, every path in a temp dir.
    The master runs in the foreground (`daemon off`) as our child; `stop()` ends it.
    """

    def __init__(self, upstreams: Sequence[str], conf: Path = DEPLOY_NGINX_CONF) -> None:
        binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
        if not binary:
            raise RuntimeError("nginx not found; install Debian's 'nginx'")
        self._binary = binary
        self.port = free_port()
        self._root = Path(tempfile.mkdtemp(prefix="roomcast-nginx-"))
        self._root.chmod(0o755)  # as root, the workers run as nobody and use the temp dirs
        self.conf = self._root / "nginx.conf"
        self.conf.write_text(self._main_conf(self._site(conf.read_text(), upstreams)))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _site(self, text: str, upstreams: Sequence[str]) -> str:
        def upstream(match: re.Match[str]) -> str:
            servers = "".join(f"    server {address};\n" for address in upstreams)
            return f"upstream {match.group(1)} {{\n{servers}}}"

        text, upstream_blocks = re.subn(r"upstream\s+(\S+)\s*\{[^}]*\}", upstream, text)
        text, listens = re.subn(r"\blisten\s+[^;]+;", f"listen 127.0.0.1:{self.port};", text)
        if (upstream_blocks, listens) != (1, 1):
            raise RuntimeError(
                f"{DEPLOY_NGINX_CONF.name} should have one upstream block and one listen; "
                f"found {upstream_blocks} and {listens}"
            )
        return text

    def _main_conf(self, site: str) -> str:
        root = self._root
        temp_paths = "".join(
            f"    {kind}_temp_path {root / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return (
            f"pid {root / 'nginx.pid'};\n"
            f"error_log {root / 'error.log'} notice;\n"
            "worker_processes 1;\n"
            "events { worker_connections 512; }\n"
            "http {\n"
            f"    access_log {root / 'access.log'};\n"
            f"{temp_paths}"
            f"{site}\n"
            "}\n"
        )

    def error_log(self) -> str:
        with contextlib.suppress(OSError):
            return (self._root / "error.log").read_text(errors="replace")
        return "(no error log)"

    def start(self, timeout: float = 10.0) -> None:
        """Start nginx and wait until it listens. Raises RuntimeError with its error log."""
        self._process = subprocess.Popen(
            [self._binary, "-p", str(self._root), "-c", str(self.conf)]
            + ["-e", str(self._root / "error.log"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its workers are in our child's group, for stop()
        )
        try:
            _wait_for_port(self.port, time.monotonic() + timeout, "nginx")
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"nginx did not start:\n{self.error_log()}") from None

    def stop(self) -> None:
        """SIGTERM (nginx's fast shutdown) to the master; its group is killed if it hangs."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self._root, ignore_errors=True)
