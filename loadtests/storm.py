"""The reconnect-storm benchmark: N clients connect, authenticate and join, C at a time.

    python -m loadtests.storm                      # 10,000 clients, 200 at a time, pg+redis
    python -m loadtests.storm --quick              # 300 clients, 50 at a time, pg: < 40 s
    python -m loadtests.storm --config all --concurrency 1000 --json storm.json
    make storm ARGS="--clients 5000 --profile prof/"

One run: a throwaway PostgreSQL (and Redis for the configurations that use it),
migrated and seeded through storage (about `--users` users over `--rooms` rooms, one
team per room), access tokens minted with server/auth/tokens.py. The aiohttp baseline
(loadtests/baseline_server.py: a plain connect and join, no auth, no storage) and then
each Roomcast configuration get the same storm from the same client processes
(loadtests/storm_client.py): every client opens a websocket, sends `auth`, waits for
`ready`, joins one room, waits for `joined` and stays connected, idle. Per server: the
connects+joins per second over the whole storm, the time from the connect to `joined`
(p50/p99/max, and to the 101 and to `ready`), failures by cause, the CPU of the
server, PostgreSQL and Redis, and the server's RSS per idle joined client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadtests.fanout import Servers, _check_token, _cores, _database, _migrate
from loadtests.phases import chunks
from loadtests.processes import (
    REPO,
    CpuClock,
    CpuMeter,
    ServerProcess,
    WorkerPool,
    cores_busy_seconds,
    cpu_seconds,
    rss,
    run_main,
    say,
)
from loadtests.pyspy import Sampler, top_frames
from loadtests.pyspy import _binary as pyspy_binary
from loadtests.seed import SeededRoom, mint_tokens, seed_rooms
from loadtests.storm_client import Close, Storm, storm_main
from loadtests.storm_profile import LOOP
from tests.services import RedisServer

CONFIGS = ("pg", "pg+redis", "two-instances")
SETTLE = 2.0  # seconds before reading RSS: closing handshakes and presence go by
Session = tuple[int, str, str | None]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.storm", description=__doc__.split("\n\n")[0]
    )
    add = parser.add_argument
    add("--clients", type=int, default=10_000, help="clients in the storm (default 10000)")
    add("--concurrency", type=int, default=200, help="connecting at a time (default 200)")
    add("--users", type=int, default=1000, help="distinct users, about (default 1000)")
    add("--rooms", type=int, default=10, help="rooms, one team each (default 10)")
    add("--config", choices=[*CONFIGS, "all"], default="pg+redis", help="Roomcast setup")
    add("--no-baseline", dest="baseline", action="store_false", help="skip the baseline")
    add("--timeout", type=float, default=30.0, help="seconds from connect to joined")
    add("--client-procs", type=int, default=1, help="load client processes")
    add("--server-core", type=int, default=0, help="core the server under test runs on")
    add("--client-cores", type=_cores, default={1}, help="cores of the clients, e.g. 1")
    add("--database-url", help="an existing PostgreSQL to use (migrated here)")
    add("--server-tree", type=Path, default=REPO, help="checkout whose run.py is served")
    add("--server-env", action="append", default=[], help="KEY=VALUE for Roomcast's env")
    add("--profile", type=Path, help="directory: profile Roomcast during each storm")
    add("--json", type=Path, help="write every figure here as JSON")
    add("--logs", type=Path, help="keep the servers' logs in this directory")
    add("--quick", action="store_true", help="300 clients, 50 at a time, pg, and baseline")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.concurrency, args.users, args.config = 300, 50, 100, "pg"
    return args


class ClientPool(WorkerPool):
    """Storm client processes on the client cores, commanded in lockstep over pipes."""

    def __init__(self, count: int, cores: set[int], stack: contextlib.ExitStack) -> None:
        super().__init__(count, cores, stack, target=storm_main, label="storm client")

    def storm(self, sessions: Sequence[Session], concurrency: int, timeout: float) -> list[Any]:
        parts = chunks(sessions, len(self.pipes))
        share = max(1, concurrency // len(self.pipes))
        commands = [Storm(tuple(part), share, timeout) for part in parts]
        return self.run(commands, timeout * (len(sessions) / share + 2) + 60)

    def close(self) -> None:
        self.run([Close()] * len(self.pipes), 120)


def _percentile(values: Sequence[int], q: float) -> float:
    """The q-th percentile (nearest rank) of ns values, in ms; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    return ordered[rank] / 1e6


@dataclass
class StormFigures:
    """One server's storm: rates, times to each milestone, failures, CPU and memory."""

    name: str
    clients: int
    concurrency: int
    joined: int = 0
    seconds: float = 0.0
    joined_ms: dict[str, float] = field(default_factory=dict)
    ready_ms: dict[str, float] = field(default_factory=dict)
    upgraded_ms: dict[str, float] = field(default_factory=dict)
    connected_ms: dict[str, float] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    lost_after_join: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    rss_before_mib: float = 0.0
    rss_after_mib: float = 0.0
    warmup: int = 0

    @property
    def rate(self) -> float:
        return self.joined / self.seconds if self.seconds else 0.0

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def kib_per_client(self) -> float:
        return (self.rss_after_mib - self.rss_before_mib) * 1024 / self.joined if self.joined else 0

    def absorb(self, replies: Sequence[dict[str, Any]]) -> None:
        start = min(r["started_ns"] for r in replies)
        self.seconds = (max(r["ended_ns"] for r in replies) - start) / 1e9
        self.joined = sum(r["joined"] for r in replies)
        failures: Counter[str] = Counter()
        lost: Counter[str] = Counter()
        for reply in replies:
            failures.update(reply["failures"])
            lost.update({f"close {code}": n for code, n in reply["lost_since_joined"].items()})
        self.failures, self.lost_after_join = dict(failures), dict(lost)
        for key, target in (
            ("joined_ns", self.joined_ms),
            ("ready_ns", self.ready_ms),
            ("upgraded_ns", self.upgraded_ms),
            ("connected_ns", self.connected_ms),
        ):
            values = [v for reply in replies for v in reply[key]]
            target.update(
                p50=_percentile(values, 50),
                p99=_percentile(values, 99),
                max=_percentile(values, 100),
            )

    def lines(self) -> list[str]:
        def times(label: str, ms: dict[str, float]) -> str:
            return f"{label:<22} p50 {ms['p50']:8.1f}  p99 {ms['p99']:8.1f}  max {ms['max']:8.1f}"

        failures = ", ".join(f"{cause}: {n}" for cause, n in sorted(self.failures.items()))
        cpu = "  ".join(f"{name} {value:.1f}" for name, value in self.cpu.items())
        return [
            f"connects+joins/s       {self.rate:.1f}  ({self.joined} of {self.clients} joined "
            f"in {self.seconds:.2f} s)",
            times("time to joined ms", self.joined_ms),
            times("  to ready ms", self.ready_ms),
            times("  to 101 ms", self.upgraded_ms),
            times("  to TCP connected ms", self.connected_ms),
            f"failures               {self.failed}" + (f" ({failures})" if failures else ""),
            f"closed after joined    {sum(self.lost_after_join.values())}",
            f"CPU %                  {cpu}",
            f"RSS MiB                before {self.rss_before_mib:.1f}  after "
            f"{self.rss_after_mib:.1f}  per idle joined client {self.kib_per_client:.1f} KiB",
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "rate": self.rate,
            "failed": self.failed,
            "kib_per_client": self.kib_per_client,
        }


@dataclass
class Target:
    """What one storm runs against: the servers (clients alternate over them) and clocks."""

    name: str
    servers: list[ServerProcess]
    clocks: dict[str, CpuClock]
    tokens: bool  # Roomcast: an `auth` frame first; the baseline: none
    stop_after: list[Callable[[], None]] = field(default_factory=list)  # its Redis


def _sessions(
    rooms: Sequence[SeededRoom], tokens: dict[str, str], count: int
) -> list[tuple[str, str]]:
    """(room id, token) of client i: room i mod R, the room's users in turn."""
    picked: list[tuple[str, str]] = []
    for i in range(count):
        room = rooms[i % len(rooms)]
        user = room.users[(i // len(rooms)) % len(room.users)]
        picked.append((room.room_id, tokens[user.id]))
    return picked


def _placed(target: Target, pairs: Sequence[tuple[str, str]]) -> list[Session]:
    ports = [s.port for s in target.servers]
    return [
        (ports[i % len(ports)], room, token if target.tokens else None)
        for i, (room, token) in enumerate(pairs)
    ]


class Profiler:
    """py-spy on the first server when installed, else the in-process stack sampler.

    Either way the output is collapsed stacks, summarized with loadtests/pyspy.py.
    """

    def __init__(self, directory: Path | None, server: ServerProcess, cores: set[int]) -> None:
        self.directory, self.server, self.cores = directory, server, cores
        self.sampler: Sampler | None = None

    @property
    def output(self) -> Path:
        assert self.directory is not None
        return self.directory.resolve() / f"{self.server.name}.txt"

    def start(self) -> None:
        if self.directory is None:
            return
        self.output.unlink(missing_ok=True)  # an earlier run's; stop() waits for the new one
        if pyspy_binary():
            self.sampler = Sampler(self.server.pid, self.output, self.cores)
        else:
            os.kill(self.server.pid, signal.SIGUSR1)

    def stop(self) -> None:
        if self.directory is None:
            return
        if self.sampler is not None:
            self.sampler.stop()
        else:
            os.kill(self.server.pid, signal.SIGUSR2)
            deadline = time.monotonic() + 30
            while not self.output.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
        if self.output.exists():
            for line in profile_lines(self.output):
                say(line)


# The steps of a connection, as (label, a frame that is on the stack while it runs):
# the share of samples whose stack holds that frame. Renamed functions show 0 %.
STEPS = (
    ("HTTP request, upgrade and auth (all)", "_handle_request (aiohttp/web_protocol.py"),
    ("  websocket upgrade (ws.prepare)", "prepare (aiohttp/web_ws.py"),
    ("  auth frame (all)", "_first_frame_auth (server/ws.py"),
    ("    token check (decode_access)", "decode_access (server/auth/tokens.py"),
    ("      JWT decode", "decode (jwt/api_jwt.py"),
    ("      denylist read (is_revoked)", "is_revoked (storage/revoked_families.py"),
    ("    user lookup (users.get)", "get (storage/users.py"),
    ("  session opened, ready sent", "open_session (actors/hub.py"),
    ("join in the session actor (all)", "_join (actors/session.py"),
    ("  membership check (rooms.access)", "access (storage/rooms.py"),
    ("room actor Enter (_enter)", "_enter (actors/room.py"),
    ("  member list (_everyone)", "_everyone (actors/room.py"),
    ("  presence (storage/presence.py)", "(storage/presence.py"),
    ("frames written (ws_wire put)", "put (server/ws_wire.py"),
    ("SQLAlchemy, anywhere", "(sqlalchemy/"),
    ("asyncpg, anywhere", "(asyncpg/"),
    ("redis client, anywhere", "(redis/"),
)


def step_lines(collapsed: Path) -> list[str]:
    """The share of samples spent in each step of a connection (see STEPS)."""
    total = 0
    hits: Counter[str] = Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        for label, frame in STEPS:
            if frame in stack:
                hits[label] += int(count)
    lines = ["a connection's steps (share of samples with the step on the stack):"]
    lines += [f"  {100 * hits[label] / max(total, 1):5.1f}%  {label}" for label, _ in STEPS]
    return lines


def profile_lines(collapsed: Path) -> list[str]:
    """The samples' top functions (pyspy.top_frames) and self time by area."""
    loop = samples = 0
    areas: Counter[str] = Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples += int(count)
        if stack == LOOP:
            loop += int(count)
        areas[_area(stack.rsplit(";", 1)[-1])] += int(count)
    share = 100 * loop / samples if samples else 0.0
    report = [f"profile {collapsed}: {samples} samples, {share:.1f}% in the loop's C code"]
    report += top_frames(collapsed)
    report.append("self time by area:")
    total = sum(areas.values()) or 1
    report += [f"  {100 * n / total:5.1f}%  {area}" for area, n in areas.most_common(12)]
    return report + step_lines(collapsed)


def _area(frame: str) -> str:
    """The package or project directory of a collapsed frame `name (path:line)`."""
    path = frame.rpartition("(")[2]
    for prefix in ("server/auth/", "server/ws", "server/", "actors/", "storage/"):
        if path.startswith(prefix):
            return prefix
    return path.split("/", 1)[0].split(".", 1)[0] or "?"


def run_storm(
    target: Target,
    pool: ClientPool,
    pairs: Sequence[tuple[str, str]],
    warmup: Sequence[tuple[str, str]],
    args: argparse.Namespace,
) -> StormFigures:
    """Warm up, read RSS, storm (CPU measured over it), settle, read RSS; close all."""
    figures = StormFigures(target.name, len(pairs), args.concurrency, warmup=len(warmup))
    warm = pool.storm(_placed(target, warmup), min(args.concurrency, 20), args.timeout)
    if any(reply["failures"] for reply in warm):
        say(f"warm-up failures: {[reply['failures'] for reply in warm]}")
    time.sleep(SETTLE)
    pids = [s.pid for s in target.servers]
    figures.rss_before_mib = sum(rss(pid) for pid in pids) / 2**20
    meter = CpuMeter(target.clocks)
    profiler = Profiler(args.profile, target.servers[0], set(args.client_cores))
    profiler.start()
    meter.start()
    replies = pool.storm(_placed(target, pairs), args.concurrency, args.timeout)
    figures.cpu = meter.stop()
    profiler.stop()
    figures.absorb(replies)
    time.sleep(SETTLE)
    figures.rss_after_mib = sum(rss(pid) for pid in pids) / 2**20
    pool.close()
    return figures


class Fleet(Servers):
    """Starts the servers under test on the server core; everything stops with the stack."""

    def __init__(self, args: argparse.Namespace, url: str, tmp: Path, stack: contextlib.ExitStack):
        super().__init__(args, url, tmp, stack)
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)

    def roomcast(self, name: str, redis_url: str | None) -> ServerProcess:
        extra = {"REDIS_URL": redis_url} if redis_url else {}
        wrapper: list[str] = []
        if self.args.profile and not pyspy_binary():
            output = self.args.profile.resolve() / f"{name}.txt"
            wrapper = ["-m", "loadtests.storm_profile", str(output)]
            extra["PYTHONPATH"] = str(REPO)
        return self.start(name, extra, kind="roomcast", wrapper=wrapper)

    def baseline(self) -> ServerProcess:
        return self.start("baseline")


def _clocks(pids: list[int], pool: ClientPool, args: argparse.Namespace) -> dict[str, CpuClock]:
    return {
        "server": lambda: cpu_seconds(pids),
        "clients": lambda: cpu_seconds(pool.pids),
        "server core busy": lambda: cores_busy_seconds({args.server_core}),
    }


def _roomcast_target(
    config: str, fleet: Fleet, pool: ClientPool, db_cpu: CpuClock, stack: contextlib.ExitStack
) -> Target:
    """The configuration's Roomcast instances (and Redis), started; CPU clocks for them."""
    redis_url = None
    extra: dict[str, CpuClock] = {"postgres": db_cpu}
    stop_after: list[Callable[[], None]] = []
    if config != "pg":
        redis = RedisServer()
        stack.callback(redis.destroy)  # also on the way out of an error
        redis.start()
        redis_url = redis.url
        redis_pid = redis._process.pid if redis._process else 0  # noqa: SLF001 - ours
        extra["redis"] = lambda: cpu_seconds([redis_pid])
        stop_after.append(redis.destroy)
    names = ["roomcast-a", "roomcast-b"] if config == "two-instances" else ["roomcast"]
    servers = [fleet.roomcast(f"{name}-{config.replace('+', '-')}", redis_url) for name in names]
    clocks = {**_clocks([s.pid for s in servers], pool, fleet.args), **extra}
    return Target(f"roomcast {config}", servers, clocks, tokens=True, stop_after=stop_after)


def _header(target: Target, args: argparse.Namespace) -> str:
    pids = ", ".join(f"{s.name} pid {s.pid}" for s in target.servers)
    return (
        f"\n== {target.name}: {args.clients} clients, {args.concurrency} at a time; {pids} "
        f"on core {args.server_core} =="
    )


def _summary(results: list[StormFigures]) -> list[str]:
    base = next((r for r in results if r.name == "baseline"), None)
    lines = [
        f"{'server':<24} {'joined':>7} {'failed':>6} {'conn+join/s':>11} {'x base':>6} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'srv CPU%':>8} {'pg CPU%':>7} "
        f"{'redis%':>6} {'KiB/client':>10}"
    ]
    for r in results:
        ratio = f"{r.rate / base.rate:.2f}" if base and base.rate else "-"
        lines.append(
            f"{r.name:<24} {r.joined:>7} {r.failed:>6} {r.rate:>11.1f} {ratio:>6} "
            f"{r.joined_ms['p50']:>8.1f} {r.joined_ms['p99']:>8.1f} {r.joined_ms['max']:>8.1f} "
            f"{r.cpu.get('server', 0):>8.1f} {r.cpu.get('postgres', 0):>7.1f} "
            f"{r.cpu.get('redis', 0):>6.1f} {r.kib_per_client:>10.1f}"
        )
    if base:
        for r in results:
            if r is not base:
                times = r.rate / base.rate if base.rate else 0.0
                lines.append(f"{r.name} / baseline connects+joins per second: {times:.2f}")
    return lines


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> list[StormFigures]:
    tmp = Path(tempfile.mkdtemp(prefix="roomcast-storm-"))
    stack.callback(shutil.rmtree, tmp, True)
    say("== Setup ==")
    url, db_cpu = _database(args, stack)
    _migrate(url, args.server_tree)
    started = time.monotonic()
    per_room = max(1, math.ceil(args.users / args.rooms))
    rooms = _seed(url, args.rooms, per_room)
    users = [user for room in rooms for user in room.users]
    say(
        f"PostgreSQL {'given' if args.database_url else 'throwaway'}, migrated; {len(users)} "
        f"users in {len(rooms)} rooms (a team each) seeded via storage in "
        f"{time.monotonic() - started:.1f} s; server core {args.server_core}, "
        f"{args.client_procs} client process(es) on cores {sorted(args.client_cores)}; "
        f"load average {' '.join(f'{n:.2f}' for n in os.getloadavg())}"
    )
    fleet = Fleet(args, url, tmp, stack)
    tokens = mint_tokens(fleet.secret, users)
    warm_count = max(10, args.clients // 100)
    pairs = _sessions(rooms, tokens, args.clients + warm_count)
    warmup, storm = pairs[args.clients :], pairs[: args.clients]
    pool = ClientPool(args.client_procs, args.client_cores, stack)
    results: list[StormFigures] = []
    if args.baseline:
        server = fleet.baseline()
        target = Target("baseline", [server], _clocks([server.pid], pool, args), tokens=False)
        results.append(_measure(target, pool, storm, warmup, args))
    for config in CONFIGS if args.config == "all" else (args.config,):
        target = _roomcast_target(config, fleet, pool, db_cpu, stack)
        _check_token(target.servers[0], tokens[users[0].id])
        results.append(_measure(target, pool, storm, warmup, args))
    say("\n== Summary ==")
    for line in _summary(results):
        say(line)
    if args.json is not None:
        _write_json(args, results)
    return results


def _measure(
    target: Target,
    pool: ClientPool,
    storm: Sequence[tuple[str, str]],
    warmup: Sequence[tuple[str, str]],
    args: argparse.Namespace,
) -> StormFigures:
    say(_header(target, args))
    try:
        figures = run_storm(target, pool, storm, warmup, args)
    finally:
        for server in target.servers:
            server.stop()
        for stop in target.stop_after:
            stop()
    for line in figures.lines():
        say(line)
    return figures


def _seed(url: str, rooms: int, per_room: int) -> list[SeededRoom]:
    return asyncio.run(seed_rooms(url, "storm", rooms, per_room))


def _write_json(args: argparse.Namespace, results: list[StormFigures]) -> None:
    base = next((r for r in results if r.name == "baseline"), None)
    document = {
        "setup": {
            "clients": args.clients,
            "concurrency": args.concurrency,
            "users": args.users,
            "rooms": args.rooms,
            "config": args.config,
            "timeout": args.timeout,
            "client_procs": args.client_procs,
            "server_core": args.server_core,
            "client_cores": sorted(args.client_cores),
            "cpus": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
            "load_average": os.getloadavg(),
        },
        "servers": {r.name: r.to_json() for r in results},
        "ratios": {
            r.name: (r.rate / base.rate if base.rate else None)
            for r in results
            if base is not None and r is not base
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2))
    say(f"figures written to {args.json}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(parse_args(argv), run)


if __name__ == "__main__":
    sys.exit(main())
