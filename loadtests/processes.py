"""The processes of a benchmark run: servers pinned to a core, client workers, CPU samples.

Everything started here is stopped by the `ExitStack` the caller passes in, whichever
way the run ends (error, Ctrl-C, SIGTERM): servers get SIGTERM then SIGKILL, client
workers get an `Exit` and are then terminated.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NoReturn

import psutil

from loadtests.worker import Exit, raise_open_files_limit, worker_main

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


def _pin_and_lift(cores: set[int]) -> Callable[[], None]:
    """A preexec_fn: the child runs on `cores` with RLIMIT_NOFILE at its hard limit."""

    def prepare() -> None:
        os.sched_setaffinity(0, cores)
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    return prepare


@dataclass
class ServerProcess:
    """A server under test: its process, port and log file."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(self.url("/health"), timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not healthy within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    name: str,
    argv: Sequence[str],
    *,
    port: int,
    env: dict[str, str],
    core: int,
    log_dir: Path,
    stack: contextlib.ExitStack,
    cwd: Path = REPO,
) -> ServerProcess:
    """Start `argv` in `cwd` pinned to `core`, wait for /health, and register its stop."""
    log = log_dir / f"{name}-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, *argv],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_pin_and_lift({core}),  # noqa: PLW1509 - no threads in this process
            start_new_session=True,  # Ctrl-C is ours to handle, in order
        )
    server = ServerProcess(name, process, port, log)
    stack.callback(server.stop)
    server.wait_healthy()
    return server


class WorkerPool:
    """Client processes on the client cores, commanded in lockstep over pipes.

    `target` is the processes' entry point (`worker_main` or another `serve_commands`
    user); `label` names a process in errors.
    """

    def __init__(
        self,
        count: int,
        cores: set[int],
        stack: contextlib.ExitStack,
        target: Callable[[Connection, set[int]], None] = worker_main,
        label: str = "client worker",
    ) -> None:
        self.label = label
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        stack.callback(self.stop)
        for _ in range(count):
            parent, child = context.Pipe()
            process = context.Process(target=target, args=(child, cores), daemon=True)
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    def send(self, commands: Sequence[Any]) -> None:
        """One command per worker, sent without waiting."""
        for pipe, command in zip(self.pipes, commands, strict=True):
            pipe.send(command)

    def gather(self, timeout: float) -> list[dict[str, Any]]:
        """Every worker's answer to the last commands. Raises RuntimeError on error/timeout."""
        deadline = time.monotonic() + timeout
        replies = []
        for index, pipe in enumerate(self.pipes):
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise RuntimeError(f"{self.label} {index} did not answer within {timeout:.0f} s")
            reply: dict[str, Any] = pipe.recv()
            if "error" in reply:
                raise RuntimeError(f"{self.label} {index} failed:\n{reply['error']}")
            replies.append(reply)
        return replies

    def run(self, commands: Sequence[Any], timeout: float) -> list[dict[str, Any]]:
        """One command per process; every answer. Raises RuntimeError on error/timeout."""
        self.send(commands)
        return self.gather(timeout)

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError, ValueError):
                pipe.send(Exit())
        for process in self.processes:
            process.join(3)
            if process.is_alive():
                process.terminate()
                process.join(3)
        for pipe in self.pipes:
            pipe.close()
        self.pipes.clear()
        self.processes.clear()


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds the processes `pids` have used so far."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of `pid` and all its descendants, the exited ones included.

    PostgreSQL forks a backend per connection; a backend that exits is reaped by the
    postmaster, whose `children_*` times then hold what it used.
    """
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        times = root.cpu_times()
        own = float(times.user + times.system + times.children_user + times.children_system)
        return own + cpu_seconds([child.pid for child in root.children(recursive=True)])
    return 0.0


def rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


CpuClock = Callable[[], float]


def cores_busy_seconds(cores: AbstractSet[int]) -> float:
    """Seconds the given cores spent not idle, whoever ran on them (other load shows here)."""
    per_core = psutil.cpu_times(percpu=True)
    total = 0.0
    for core in cores:
        times = per_core[core]
        total += sum(times) - times.idle - getattr(times, "iowait", 0.0)
    return total


class CpuMeter:
    """CPU % of groups of processes over a window (100 % = one core busy)."""

    def __init__(self, clocks: dict[str, CpuClock]) -> None:
        self._clocks = clocks
        self._start: dict[str, float] = {}
        self._started = 0.0

    def start(self) -> None:
        self._started = time.monotonic()
        self._start = {name: clock() for name, clock in self._clocks.items()}

    def stop(self) -> dict[str, float]:
        wall = max(time.monotonic() - self._started, 1e-6)
        return {
            name: 100.0 * (clock() - self._start[name]) / wall
            for name, clock in self._clocks.items()
        }


def say(line: str = "") -> None:
    print(line, flush=True)  # noqa: T201


def _terminated(_signum: int, _frame: Any) -> NoReturn:
    raise SystemExit(143)


def run_main(args: Any, run: Callable[[Any, contextlib.ExitStack], object]) -> int:
    """A load test's `main`: `run(args, stack)`, with everything it started stopped on
    the way out, SIGTERM included; 130 after Ctrl-C, else 0."""
    raise_open_files_limit()
    signal.signal(signal.SIGTERM, _terminated)
    try:
        with contextlib.ExitStack() as stack:
            run(args, stack)
    except KeyboardInterrupt:
        say("interrupted; everything started was stopped")
        return 130
    return 0
