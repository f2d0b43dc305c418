"""The two measurements of a server: stepped fan-out and idle sessions.

Both drive the server through the client workers (loadtests/worker.py) and sample the
server's CPU and RSS from outside with psutil. The caller starts and stops the servers.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from loadtests.processes import (
    CpuClock,
    CpuMeter,
    ServerProcess,
    WorkerPool,
    cores_busy_seconds,
    cpu_seconds,
    rss,
    say,
)
from loadtests.pyspy import Sampler, top_frames
from loadtests.report import STEP_HEADER, IdleFigures, StepFigures, merge_step, step_line
from loadtests.worker import Close, Connect, Idle, RoomPlan, Step

T = TypeVar("T")
CONNECT_TIMEOUT = 600.0
SETTLE = 0.5  # between steps: the previous step is drained, let the server breathe
IDLE_SETTLE = 2.0


@dataclass(frozen=True)
class StepPlan:
    rates: Sequence[float]
    seconds: float
    drain: float
    subscribers: int  # per room: deliveries per message
    refine: int = 2  # extra steps bisecting around the sustained limit
    server_core: int = 0
    client_cores: frozenset[int] = frozenset({1})


def split(items: Sequence[T], parts: int) -> list[list[T]]:
    """`items` dealt round-robin into `parts` lists (rooms to workers)."""
    return [list(items[i::parts]) for i in range(parts)]


def chunks(items: Sequence[T], parts: int) -> list[list[T]]:
    """`items` cut into `parts` contiguous runs of near-equal length."""
    size, extra = divmod(len(items), parts)
    runs: list[list[T]] = []
    start = 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        runs.append(list(items[start:end]))
        start = end
    return runs


class FanoutRun:
    """One server's stepped fan-out: the connections, the steps so far, the next step."""

    def __init__(
        self,
        server: ServerProcess,
        pool: WorkerPool,
        rooms: Sequence[RoomPlan],
        plan: StepPlan,
        db_cpu: CpuClock,
        others: Sequence[ServerProcess] = (),
        redis_cpu: CpuClock | None = None,
    ) -> None:
        self.server, self.pool, self.plan = server, pool, plan
        # Several instances: the members of each room alternate over the servers' ports.
        self.servers = [server, *others]
        self.ports = tuple(s.port for s in self.servers) if others else ()
        self.parts = split(rooms, len(pool.pipes))
        self.shares = [len(part) / len(rooms) for part in self.parts]
        pids = [s.pid for s in self.servers]
        clocks: dict[str, CpuClock] = {
            "server": lambda: cpu_seconds(pids),
            "clients": lambda: cpu_seconds(pool.pids),
            "db": db_cpu,
            "server core": lambda: cores_busy_seconds({plan.server_core}),
            "client cores": lambda: cores_busy_seconds(plan.client_cores),
        }
        if redis_cpu is not None:
            clocks["redis"] = redis_cpu
        self.meter = CpuMeter(clocks)
        self.steps: list[StepFigures] = []

    def connect(self) -> None:
        commands = [Connect(self.server.port, tuple(part), self.ports) for part in self.parts]
        replies = self.pool.run(commands, CONNECT_TIMEOUT)
        connections = sum(reply["connections"] for reply in replies)
        seconds = max(reply["seconds"] for reply in replies)
        say(f"{connections} connections authenticated and joined in {seconds:.1f} s")

    def close(self) -> None:
        self.pool.run([Close()] * len(self.pool.pipes), 60)

    def step(self, rate: float) -> StepFigures:
        """Offer `rate` msgs/s for the plan's window, drain, measure; print the line."""
        plan, number = self.plan, len(self.steps)
        self.meter.start()
        self.pool.send([Step(number, rate * s, plan.seconds, plan.drain) for s in self.shares])
        time.sleep(plan.seconds)
        cpu = self.meter.stop()
        resident = sum(rss(server.pid) for server in self.servers)
        replies = self.pool.gather(plan.seconds + plan.drain + 60)
        figures = merge_step(rate, plan.subscribers, replies)
        figures.server_cpu = cpu["server"]
        figures.client_cpu = cpu["clients"]
        figures.db_cpu = cpu["db"]
        figures.server_core_busy = cpu["server core"]
        figures.client_cores_busy = cpu["client cores"]
        figures.server_rss_mib = resident / 2**20
        if "redis" in cpu:
            figures.extra["redis_cpu"] = cpu["redis"]
        self.steps.append(figures)
        say(step_line(figures))
        if figures.closed:  # the server dropped some members: start the next step whole
            say("reconnecting the rooms' members after closed connections")
            self.close()
            self.connect()
        time.sleep(SETTLE)
        return figures

    def climb(self) -> None:
        """The plan's rates in order, until the server is clearly saturated."""
        for rate in self.plan.rates:
            figures = self.step(rate)
            if figures.saturated or _twice_over(self.steps):
                return

    def refine(self, rounds: int) -> None:
        """Bisect (geometrically) between the best sustained and the first failed rate."""
        for _ in range(rounds):
            tried = {s.target_rate for s in self.steps}
            good = max((s.target_rate for s in self.steps if s.sustained), default=None)
            failed = [s.target_rate for s in self.steps if not s.sustained]
            above = [r for r in failed if good is None or r > good]
            if not above:
                return
            bad = min(above)
            rate = float(f"{(math.sqrt(good * bad) if good else bad / 2):.2g}")
            if rate in tried:
                return
            self.step(rate)


def run_fanout(
    server: ServerProcess,
    pool: WorkerPool,
    rooms: Sequence[RoomPlan],
    plan: StepPlan,
    db_cpu: CpuClock,
    profile: Path | None = None,
    others: Sequence[ServerProcess] = (),
    redis_cpu: CpuClock | None = None,
) -> list[StepFigures]:
    """Connect every room's members, step up the offered rate until saturation, refine.

    With `others`, the members of every room alternate over `server` and `others` (their
    CPU and RSS are added up) and `redis_cpu` is measured per step.
    """
    run = FanoutRun(server, pool, rooms, plan, db_cpu, others, redis_cpu)
    run.connect()
    sampler = None
    if profile is not None:
        sampler = Sampler(server.pid, profile / f"{server.name}.txt", set(plan.client_cores))
    say(STEP_HEADER)
    try:
        run.climb()
        run.refine(plan.refine)
    finally:
        if sampler is not None and sampler.stop():
            for line in top_frames(sampler.output):
                say(line)
        run.close()
    return run.steps


def _twice_over(steps: list[StepFigures]) -> bool:
    return len(steps) >= 2 and not steps[-1].sustained and not steps[-2].sustained


def run_idle(
    server: ServerProcess,
    pool: WorkerPool,
    sessions: Sequence[tuple[str, str]],
    warmup: int,
) -> IdleFigures:
    """RSS before and after `len(sessions) - warmup` idle sessions (warm-up ones stay open).

    The warm-up sessions make the first RSS reading include what the first connections
    load once (code paths, pools, caches), so the difference is per-session cost only.
    """
    workers = len(pool.pipes)
    warm, rest = list(sessions[:warmup]), list(sessions[warmup:])
    pool.run([Idle(server.port, tuple(part)) for part in chunks(warm, workers)], CONNECT_TIMEOUT)
    time.sleep(IDLE_SETTLE)
    before = rss(server.pid)
    started = time.monotonic()
    replies = pool.run(
        [Idle(server.port, tuple(part)) for part in chunks(rest, workers)],
        CONNECT_TIMEOUT,
    )
    connect_seconds = time.monotonic() - started
    time.sleep(IDLE_SETTLE)
    after = rss(server.pid)
    with contextlib.suppress(RuntimeError):
        pool.run([Close()] * workers, 120)
    return IdleFigures(
        sessions=sum(reply["connections"] for reply in replies),
        warmup_sessions=len(warm),
        rss_before_mib=before / 2**20,
        rss_after_mib=after / 2**20,
        connect_seconds=connect_seconds,
    )
