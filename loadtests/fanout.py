"""The fan-out benchmark: Roomcast against a raw aiohttp broadcast baseline.

    python -m loadtests.fanout                 # 10 rooms x 50 subscribers, 5000 idle
    python -m loadtests.fanout --quick         # a < 60 s smoke run
    make bench ARGS="--rooms 5 --json bench.json"

One run: a throwaway PostgreSQL (unless --database-url), migrated and seeded through
storage; Roomcast (`run.py serve`) pinned to the server core; client worker processes
pinned to the client core(s). Publishers (members too) step up the offered rate; every
step prints offered and delivered messages/s, send-to-receipt latency, lost and
out-of-order deliveries (per room, by seq, after a drain), server CPU and RSS, the
database's and the clients' CPU. The same client then drives loadtests/baseline_server.py
through the same steps, and both servers are measured with idle joined sessions. The
summary gives each server's sustained rate (p99 < 100 ms, nothing lost or reordered) and
Roomcast's as a ratio of the baseline's; --json writes every figure.
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
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.assistant import FakeGeminiProcess, run_assistant
from loadtests.phases import StepPlan, run_fanout, run_idle
from loadtests.processes import (
    REPO,
    CpuClock,
    ServerProcess,
    WorkerPool,
    cpu_seconds,
    run_main,
    say,
    start_server,
    tree_cpu_seconds,
)
from loadtests.report import (
    IdleFigures,
    StepFigures,
    instances_lines,
    summary_lines,
    sustained_rate,
)
from loadtests.seed import SeededRoom, mint_tokens, seed_rooms
from loadtests.worker import RoomPlan
from server.config import generate_secret
from storage import migrate
from tests.services import PostgresServer, RedisServer, free_port

IDLE_ROOM_SIZE = 50
INSTANCES = "roomcast_instances"  # the steps of the --instances run, in --json too


def _rates(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def _cores(text: str) -> set[int]:
    return {int(part) for part in text.split(",") if part.strip()}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.fanout", description=__doc__.split("\n\n")[0]
    )
    add = parser.add_argument
    add("--rooms", type=int, default=10, help="rooms (default 10)")
    add("--subscribers", type=int, default=50, help="subscribers per room (default 50)")
    add("--publishers", type=int, default=2, help="publishers per room, also members")
    add("--rates", type=_rates, help="offered msgs/s steps, e.g. 500,1000,2000")
    add("--start-rate", type=float, default=100.0, help="first step (msgs/s, all rooms)")
    add("--factor", type=float, default=math.sqrt(2), help="growth between steps")
    add("--max-rate", type=float, default=16000.0, help="last step at most (msgs/s)")
    add("--refine", type=int, default=2, help="extra steps bisecting the sustained limit")
    add("--step-seconds", type=float, default=5.0, help="sending window of a step")
    add("--drain-seconds", type=float, default=5.0, help="max wait for acks and deliveries")
    add("--idle", type=int, default=5000, help="idle joined sessions (0: skip)")
    add("--client-procs", type=int, default=1, help="load client processes")
    add("--server-core", type=int, default=0, help="core the server under test runs on")
    add("--client-cores", type=_cores, default={1}, help="cores of the clients, e.g. 1")
    add("--servers", default="roomcast,baseline", help="which servers to measure")
    add("--database-url", help="an existing PostgreSQL to use (migrated here)")
    add(
        "--server-tree",
        type=Path,
        default=REPO,
        help="checkout whose run.py is served "
        "(default: this repo; e.g. a `git archive` snapshot while the tree is being edited)",
    )
    add("--server-env", action="append", default=[], help="KEY=VALUE for Roomcast's env")
    add("--profile", type=Path, help="directory: py-spy profile of each server's fan-out")
    add("--json", type=Path, help="write every figure here as JSON")
    add("--logs", type=Path, help="keep the servers' logs in this directory")
    add("--quick", action="store_true", help="2 rooms x 5, 2 short steps, 200 idle")
    add(
        "--instances",
        type=int,
        default=1,
        help="N >= 2: after the single-instance run, the same fan-out over N Roomcast "
        "instances sharing PostgreSQL and a throwaway Redis",
    )
    add(
        "--assistant",
        action="store_true",
        help="run the assistant scenario instead: TTFD and delta delivery",
    )
    add("--assistant-rooms", type=int, default=50, help="assistant rooms (default 50)")
    add("--assistant-members", type=int, default=5, help="members per room (default 5)")
    add("--assistant-tokens", type=int, default=200, help="tokens per answer (default 200)")
    add("--assistant-rate", type=float, default=50.0, help="the fake's tokens/s (default 50)")
    args = parser.parse_args(argv)
    if args.quick and args.assistant:
        args.assistant_rooms, args.assistant_members, args.assistant_tokens = 4, 3, 20
    if args.quick:
        args.rooms, args.subscribers, args.publishers = 2, 5, 1
        if args.instances >= 2:
            args.publishers = args.instances  # a publisher on every instance
        args.rates = args.rates or [100.0, 200.0]
        args.step_seconds, args.drain_seconds, args.refine = 1.5, 3.0, 0
        args.idle = min(args.idle, 200)
    if not args.rates:
        args.rates = _ladder(args.start_rate, args.factor, args.max_rate)
    return args


def _ladder(start: float, factor: float, top: float) -> list[float]:
    """start, start*factor, ... up to top, each rounded to two significant digits."""
    rates, rate = [], start
    while rate <= top * 1.0001:
        rates.append(float(f"{rate:.2g}"))
        rate *= factor
    return rates


@dataclass
class Fixtures:
    """What seeding produced: the fan-out rooms and the idle sessions' rooms."""

    fanout: list[SeededRoom]
    idle: list[SeededRoom]


def _database(args: argparse.Namespace, stack: contextlib.ExitStack) -> tuple[str, CpuClock]:
    """The database URL and a clock of the CPU seconds PostgreSQL has used."""
    if args.database_url:
        return args.database_url, lambda: 0.0  # not ours to watch
    postgres = PostgresServer()
    stack.callback(postgres.destroy)
    postgres.start()
    pid_file = postgres.data / "postmaster.pid"
    postmaster = int(pid_file.read_text().split()[0])
    return postgres.url, lambda: tree_cpu_seconds(postmaster)


async def _seed(url: str, args: argparse.Namespace) -> Fixtures:
    fanout = await seed_rooms(url, "fan", args.rooms, args.publishers + args.subscribers)
    idle_total = args.idle + _warmup(args.idle) if args.idle else 0
    idle_rooms = math.ceil(idle_total / IDLE_ROOM_SIZE)
    idle = await seed_rooms(url, "idle", idle_rooms, IDLE_ROOM_SIZE) if idle_rooms else []
    return Fixtures(fanout, idle)


def _migrate(url: str, tree: Path) -> None:
    """storage.migrate.upgrade, or the other tree's own `run.py migrate` for --server-tree."""
    if tree.resolve() == REPO:
        migrate.upgrade(url)
        return
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": generate_secret()}
    subprocess.run([sys.executable, "run.py", "migrate"], cwd=tree, env=env, check=True)


def _warmup(idle: int) -> int:
    return max(10, idle // 50)


def _room_plans(rooms: list[SeededRoom], tokens: dict[str, str], publishers: int) -> list[RoomPlan]:
    return [
        RoomPlan(
            room.room_id,
            tuple(tokens[user.id] for user in room.users[publishers:]),
            tuple(tokens[user.id] for user in room.users[:publishers]),
        )
        for room in rooms
    ]


def _idle_sessions(
    rooms: list[SeededRoom], tokens: dict[str, str], count: int
) -> list[tuple[str, str]]:
    sessions = [(room.room_id, tokens[user.id]) for room in rooms for user in room.users]
    return sessions[:count]


def _roomcast_env(
    args: argparse.Namespace, url: str, port: int, secret: str, var: Path
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(
        ENV="development",
        SECRET_KEY=secret,
        VAR_DIR=str(var),
        DATABASE_URL=url,
        HOST="127.0.0.1",
        PORT=str(port),
        AUTH_RATE_LIMIT="1000000",
        ARGON2_TIME_COST="1",
        ARGON2_MEMORY_COST="1024",
        ARGON2_PARALLELISM="1",
        WS_FRAMES_PER_SECOND="1000000",
        WS_BURST="1000000",
        LOG_LEVEL="WARNING",
    )
    for item in args.server_env:
        key, _, value = item.partition("=")
        env[key] = value
    return env


class Servers:
    """Starts the servers under test, each on a fresh port, pinned to the server core."""

    def __init__(self, args: argparse.Namespace, url: str, tmp: Path, stack: contextlib.ExitStack):
        self.args, self.url, self.tmp, self.stack = args, url, tmp, stack
        self.secret = generate_secret()
        self.logs = args.logs or tmp
        self.logs.mkdir(parents=True, exist_ok=True)
        self.started: list[ServerProcess] = []

    def start(
        self,
        name: str,
        extra_env: dict[str, str] | None = None,
        kind: str = "",
        wrapper: Sequence[str] = (),
    ) -> ServerProcess:
        """Roomcast (`run.py serve`, run by the `wrapper` module arguments if given) when
        `kind`, else `name`, is "roomcast"; the baseline server otherwise."""
        port = free_port()
        cwd = REPO
        if (kind or name) == "roomcast":
            cwd = self.args.server_tree
            var = self.tmp / ("var" if name == "roomcast" else f"var-{name}")
            env = _roomcast_env(self.args, self.url, port, self.secret, var)
            env.update(extra_env or {})
            argv = [*wrapper, "run.py", "serve"]
        else:
            env = dict(os.environ)
            argv = ["-m", "loadtests.baseline_server", "--port", str(port)]
        server = start_server(
            name,
            argv,
            port=port,
            env=env,
            core=self.args.server_core,
            log_dir=self.logs,
            stack=self.stack,
            cwd=cwd,
        )
        self.started.append(server)
        return server

    def log_tails(self) -> str:
        return "\n".join(f"--- {s.name} log (tail) ---\n{s.log_tail()}" for s in self.started)


def _check_token(server: ServerProcess, token: str) -> None:
    """Fail fast when the minted tokens are not accepted (a SECRET_KEY mix-up)."""
    request = urllib.request.Request(  # noqa: S310 - our own server on 127.0.0.1
        server.url("/api/v1/me"), headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        if response.status != 200:
            raise RuntimeError(f"GET /api/v1/me with a minted token answered {response.status}")


def _fanout_phase(
    name: str, servers: Servers, pool: WorkerPool, fixtures: Fixtures, db_cpu: CpuClock
) -> list[StepFigures]:
    args = servers.args
    users = [user for room in fixtures.fanout for user in room.users]
    tokens = mint_tokens(servers.secret, users)
    server = servers.start(name)
    if name == "roomcast":
        _check_token(server, tokens[users[0].id])
    say(
        f"\n== {name} fan-out: {args.rooms} rooms x {args.subscribers} subscribers "
        f"+ {args.publishers} publishers, pid {server.pid} on core {args.server_core} =="
    )
    plan = StepPlan(
        args.rates,
        args.step_seconds,
        args.drain_seconds,
        args.subscribers,
        args.refine,
        args.server_core,
        frozenset(args.client_cores),
    )
    rooms = _room_plans(fixtures.fanout, tokens, args.publishers)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    try:
        return run_fanout(server, pool, rooms, plan, db_cpu, args.profile)
    finally:
        server.stop()


def _instances_phase(
    servers: Servers,
    pool: WorkerPool,
    fixtures: Fixtures,
    db_cpu: CpuClock,
    stack: contextlib.ExitStack,
) -> list[StepFigures]:
    """The same stepped fan-out over `--instances` Roomcast instances sharing one Redis."""
    args = servers.args
    redis = RedisServer()
    stack.callback(redis.destroy)
    redis.start()
    redis_pid = redis._process.pid if redis._process else 0  # noqa: SLF001 - ours
    users = [user for room in fixtures.fanout for user in room.users]
    tokens = mint_tokens(servers.secret, users)
    names = [f"roomcast-{chr(ord('a') + i)}" for i in range(args.instances)]
    env = {"REDIS_URL": redis.url}
    instances = [servers.start(name, env, kind="roomcast") for name in names]
    _check_token(instances[0], tokens[users[0].id])
    placed = ", ".join(f"{n} pid {s.pid}" for n, s in zip(names, instances, strict=True))
    say(
        f"\n== roomcast x{args.instances} fan-out: {args.rooms} rooms x {args.subscribers} "
        f"subscribers + {args.publishers} publishers, members alternating over the "
        f"instances =="
    )
    say(
        f"{placed}: all on core {args.server_core}; clients on core(s) "
        f"{sorted(args.client_cores)}; redis-server pid {redis_pid} ({redis.url}) and "
        f"PostgreSQL unpinned; srv CPU%/RSS add up the instances"
    )
    plan = StepPlan(
        args.rates,
        args.step_seconds,
        args.drain_seconds,
        args.subscribers,
        args.refine,
        args.server_core,
        frozenset(args.client_cores),
    )
    rooms = _room_plans(fixtures.fanout, tokens, args.publishers)
    try:
        return run_fanout(
            instances[0],
            pool,
            rooms,
            plan,
            db_cpu,
            args.profile,
            others=instances[1:],
            redis_cpu=lambda: cpu_seconds([redis_pid]),
        )
    finally:
        for instance in instances:
            instance.stop()


def _idle_phase(name: str, servers: Servers, pool: WorkerPool, fixtures: Fixtures) -> IdleFigures:
    args = servers.args
    users = [user for room in fixtures.idle for user in room.users]
    tokens = mint_tokens(servers.secret, users)
    warmup = _warmup(args.idle)
    sessions = _idle_sessions(fixtures.idle, tokens, args.idle + warmup)
    server = servers.start(name)
    try:
        figures = run_idle(server, pool, sessions, warmup)
    finally:
        server.stop()
    say(figures.line(name))
    return figures


def _report(
    args: argparse.Namespace,
    steps: dict[str, list[StepFigures]],
    idle: dict[str, IdleFigures],
    setup: dict[str, Any],
) -> None:
    say("\n== Summary ==")
    for line in summary_lines(steps.get("roomcast", []), steps.get("baseline", []), idle):
        say(line)
    if INSTANCES in steps:
        say(f"\n== Instances: 1 in-process vs {args.instances} over Redis ==")
        for line in instances_lines(steps.get("roomcast", []), steps[INSTANCES], args.instances):
            say(line)
    if args.json is None:
        return
    rates = {name: sustained_rate(s) for name, s in steps.items()}
    base = rates.get("baseline", (0.0, 0.0))[0]
    document = {
        "setup": setup,
        "servers": {
            name: {
                "steps": [s.to_json() for s in server_steps],
                "sustained_delivered_per_s": rates[name][0],
                "sustained_offered_msgs_per_s": rates[name][1],
            }
            for name, server_steps in steps.items()
        },
        "ratio": rates["roomcast"][0] / base if base and "roomcast" in rates else None,
        "instances": args.instances,
        "idle": {name: figures.to_json() for name, figures in idle.items()},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2))
    say(f"figures written to {args.json}")


def _setup_figures(args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    return {
        "rooms": args.rooms,
        "subscribers": args.subscribers,
        "publishers": args.publishers,
        "rates": args.rates,
        "step_seconds": args.step_seconds,
        "idle": args.idle,
        "client_procs": args.client_procs,
        "server_core": args.server_core,
        "client_cores": sorted(args.client_cores),
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "seed_seconds": seconds,
        "users": "seeded via storage; access tokens minted with server/auth/tokens.py",
    }


def run_assistant_scenario(args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
    """`--assistant-rooms` x `--assistant-members`, one prompt per room at once."""
    tmp = Path(tempfile.mkdtemp(prefix="roomcast-bench-"))
    stack.callback(shutil.rmtree, tmp, True)
    say("== Setup ==")
    url, _db_cpu = _database(args, stack)
    _migrate(url, args.server_tree)
    started = time.monotonic()
    rooms = asyncio.run(
        seed_rooms(url, "ai", args.assistant_rooms, args.assistant_members, "mention")
    )
    seconds = time.monotonic() - started
    say(
        f"PostgreSQL {'given' if args.database_url else 'throwaway'}, migrated; "
        f"{args.assistant_rooms * args.assistant_members} users and {len(rooms)} rooms "
        f"(assistant: mention) seeded via storage in {seconds:.1f} s; tokens minted with "
        f"server/auth/tokens.py"
    )
    fake = FakeGeminiProcess(
        args.assistant_tokens, args.assistant_rate, set(args.client_cores), stack
    )
    servers = Servers(args, url, tmp, stack)
    env = {
        "GEMINI_API_KEY": "fake",
        "GEMINI_BASE_URL": fake.base_url,
        "GEMINI_MODEL": "gemini-bench",
        "AI_IDLE_TIMEOUT": "30",
        "PLAN_BASIC_DAILY_AI_PROMPTS": "100000",
    }
    users = [user for room in rooms for user in room.users]
    tokens = mint_tokens(servers.secret, users)
    server = servers.start("roomcast", env)
    _check_token(server, tokens[users[0].id])
    pool = WorkerPool(args.client_procs, args.client_cores, stack)
    say(
        f"roomcast pid {server.pid} on core {args.server_core}; {args.client_procs} client "
        f"process(es) on cores {sorted(args.client_cores)}; fake Gemini ({fake.base_url}, "
        f"pid {fake.pid}) on the client cores"
    )
    say(
        f"\n== Assistant: {args.assistant_rooms} rooms x {args.assistant_members} members, "
        f"one prompt per room at once; the fake streams {args.assistant_tokens} tokens at "
        f"{args.assistant_rate:g}/s =="
    )
    try:
        figures = run_assistant(
            server.port,
            server.pid,
            ({args.server_core}, set(args.client_cores)),
            pool,
            rooms,
            tokens,
            fake,
            args.assistant_tokens,
            args.assistant_rate,
        )
    except Exception:
        say(servers.log_tails())
        raise
    finally:
        server.stop()
    for line in figures.lines():
        say(line)
    if figures.unmatched_requests:
        say(f"members whose first token is not in the fake's log: {figures.unmatched_requests}")
    if args.json is not None:
        setup = {
            "server_core": args.server_core,
            "client_cores": sorted(args.client_cores),
            "client_procs": args.client_procs,
            "cpus": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
            "seed_seconds": seconds,
        }
        document = {"setup": setup, "assistant": figures.to_json()}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2))
        say(f"figures written to {args.json}")


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
    if args.assistant:
        run_assistant_scenario(args, stack)
        return
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="roomcast-bench-"))
    stack.callback(shutil.rmtree, tmp, True)
    say("== Setup ==")
    url, db_cpu = _database(args, stack)
    _migrate(url, args.server_tree)
    started = time.monotonic()
    fixtures = asyncio.run(_seed(url, args))
    seconds = time.monotonic() - started
    seeded = sum(len(room.users) for room in [*fixtures.fanout, *fixtures.idle])
    say(
        f"PostgreSQL {'given' if args.database_url else 'throwaway'}, migrated; {seeded} users "
        f"and {len(fixtures.fanout) + len(fixtures.idle)} rooms seeded via storage in "
        f"{seconds:.1f} s; tokens minted with server/auth/tokens.py"
    )
    say(
        f"server core {args.server_core}; {args.client_procs} client process(es) on cores "
        f"{sorted(args.client_cores)}; steps {args.rates} msgs/s x {args.step_seconds:g} s"
    )
    servers = Servers(args, url, tmp, stack)
    pool = WorkerPool(args.client_procs, args.client_cores, stack)
    steps: dict[str, list[StepFigures]] = {}
    idle: dict[str, IdleFigures] = {}
    try:
        for name in names:
            steps[name] = _fanout_phase(name, servers, pool, fixtures, db_cpu)
        if args.instances >= 2:
            steps[INSTANCES] = _instances_phase(servers, pool, fixtures, db_cpu, stack)
        if args.idle:
            say(f"\n== Idle sessions: {args.idle} connected, authenticated, joined ==")
            for name in names:
                idle[name] = _idle_phase(name, servers, pool, fixtures)
    except Exception:
        say(servers.log_tails())
        raise
    _report(args, steps, idle, _setup_figures(args, seconds))


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(parse_args(argv), run)


if __name__ == "__main__":
    sys.exit(main())
