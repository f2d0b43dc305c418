"""The assistant scenario: time to first delta and delta delivery under load.

R rooms x M members (`--assistant`: 50 x 5), rooms with `assistant: "mention"`; Roomcast
talks to the fake Gemini (`python -m tests.fakes.gemini --stamp`, a subprocess on the
client cores) that answers every request with N tokens at a fixed rate. One member per
room sends a prompt with `"ai": true`, all rooms at once, and every member measures
(loadtests/assistant_client.py). The fake stamps each token with CLOCK_MONOTONIC at its
write and logs, per request, when it received it and when it wrote the first token, so:

- TTFD = first `ai.delta` at a member - the prompt's send;
- the fake's first-token time = its first write - its receipt of the request (its
  pacing is one token interval, 1/rate);
- Roomcast's TTFD overhead = TTFD - the fake's first-token time of that room's request:
  the prompt's way to the model (store, queue, the SDK's request) plus the first
  token's way back to the member;
- delta delivery latency, per token and member = receipt - the fake's write stamp.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import IO, Any

from loadtests.assistant_client import Assist, AssistRoom
from loadtests.processes import (
    REPO,
    CpuMeter,
    WorkerPool,
    _pin_and_lift,
    cores_busy_seconds,
    cpu_seconds,
)
from loadtests.report import percentile
from loadtests.seed import SeededRoom

START_TIMEOUT = 30.0


class FakeGeminiProcess:
    """`python -m tests.fakes.gemini --stamp` on the given cores; its request log."""

    def __init__(
        self, tokens: int, rate: float, cores: set[int], stack: contextlib.ExitStack
    ) -> None:
        argv = [sys.executable, "-m", "tests.fakes.gemini", "--tokens", str(tokens)]
        argv += ["--rate", str(rate), "--stamp"]
        self.process = subprocess.Popen(
            argv,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            preexec_fn=_pin_and_lift(cores),  # noqa: PLW1509 - no threads in this process
            start_new_session=True,
        )
        stack.callback(self.stop)
        assert self.process.stdout is not None
        self.base_url = self._first_line(self.process.stdout)
        self.requests: list[tuple[int, int]] = []  # (received ns, first token written ns)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _first_line(self, stdout: IO[str]) -> str:
        found: list[str] = []
        reader = threading.Thread(target=lambda: found.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT)
        if not found or not found[0].startswith("http"):
            self.stop()
            raise RuntimeError(f"the fake Gemini did not start: {found!r}")
        return found[0].strip()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "request":
                self.requests.append((int(parts[1]), int(parts[2])))

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class AssistantFigures:
    rooms: int
    members: int
    tokens: int
    rate: float
    answers_expected: int
    complete: int
    incomplete: int
    incomplete_reasons: dict[str, int]
    prompt_errors: dict[str, int]
    unacked_prompts: int
    deltas: int
    ttfd_p50_ms: float
    ttfd_p99_ms: float
    fake_pacing_ms: float  # 1/rate: when the fake's first token is due
    fake_first_p50_ms: float  # measured: first write - request receipt
    fake_first_p99_ms: float
    overhead_p50_ms: float  # TTFD - fake's first-token time of the same request
    overhead_p99_ms: float
    to_model_p50_ms: float  # prompt send -> the fake received the request
    to_model_p99_ms: float
    delivery_p50_ms: float  # per token and member: receipt - fake's write
    delivery_p99_ms: float
    delivery_max_ms: float
    unmatched_requests: int  # members whose first token the fake's log does not hold
    cpu: dict[str, float]  # CPU % over the scenario (100 = one core): see `cpu_line`

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        reasons = ", ".join(f"{k}: {v}" for k, v in self.incomplete_reasons.items()) or "-"
        return [
            f"{'':<34} {'p50 ms':>8} {'p99 ms':>8}",
            f"{'TTFD (send -> first ai.delta)':<34} {self.ttfd_p50_ms:>8.1f} "
            f"{self.ttfd_p99_ms:>8.1f}",
            f"{'fake first-token time (measured)':<34} {self.fake_first_p50_ms:>8.1f} "
            f"{self.fake_first_p99_ms:>8.1f}   (pacing 1/rate = {self.fake_pacing_ms:.1f} ms)",
            f"{'Roomcast TTFD overhead':<34} {self.overhead_p50_ms:>8.1f} "
            f"{self.overhead_p99_ms:>8.1f}   (TTFD - fake first-token time, per request)",
            f"{'  of which send -> fake request':<34} {self.to_model_p50_ms:>8.1f} "
            f"{self.to_model_p99_ms:>8.1f}",
            f"{'delta delivery latency':<34} {self.delivery_p50_ms:>8.1f} "
            f"{self.delivery_p99_ms:>8.1f}   (fake's write -> member, max "
            f"{self.delivery_max_ms:.1f} ms, {self.deltas} ai.delta frames)",
            f"answers: {self.answers_expected} expected, complete={self.complete} "
            f"incomplete={self.incomplete} ({reasons}); refused prompts="
            f"{sum(self.prompt_errors.values()) + self.unacked_prompts}",
            self.cpu_line(),
        ]

    def cpu_line(self) -> str:
        """Who was busy: a server core much busier than the server means other load."""
        cpu = self.cpu
        return (
            f"CPU over the scenario: server {cpu['server']:.0f}% (its core busy "
            f"{cpu['server_core']:.0f}%), load clients {cpu['clients']:.0f}%, fake Gemini "
            f"{cpu['fake']:.0f}% (client cores busy {cpu['client_cores']:.0f}%)"
        )


def _ms(values: list[int], fraction: float) -> float:
    return percentile(values, fraction) / 1e6


def run_assistant(
    port: int,
    server_pid: int,
    cores: tuple[set[int], set[int]],
    pool: WorkerPool,
    rooms: list[SeededRoom],
    tokens: dict[str, str],
    fake: FakeGeminiProcess,
    answer_tokens: int,
    rate: float,
) -> AssistantFigures:
    """Prompt every room at once through the pool's workers; merge their figures."""
    plans = [AssistRoom(r.room_id, tuple(tokens[u.id] for u in r.users)) for r in rooms]
    workers = len(pool.pipes)
    parts = [tuple(plans[i::workers]) for i in range(workers)]
    timeout = answer_tokens / rate + 60.0
    server_core, client_cores = cores
    meter = CpuMeter(
        {
            "server": lambda: cpu_seconds([server_pid]),
            "server_core": lambda: cores_busy_seconds(server_core),
            "clients": lambda: cpu_seconds(pool.pids),
            "fake": lambda: cpu_seconds([fake.pid]),
            "client_cores": lambda: cores_busy_seconds(client_cores),
        }
    )
    meter.start()
    replies = pool.run([Assist(port, part, timeout) for part in parts], timeout + 120)
    cpu = meter.stop()
    deadline = time.monotonic() + 5.0  # the fake logs a request once its stream ended
    while len(fake.requests) < len(rooms) and time.monotonic() < deadline:
        time.sleep(0.05)
    received = dict((first, got) for got, first in fake.requests)
    ttfd, fake_first, overhead, to_model, latencies = [], [], [], [], []
    unmatched = 0
    for reply in replies:
        ttfd += reply["ttfd"]
        latencies += list(reply["latencies"])
        for ttfd_ns, stamp, sent in zip(
            reply["ttfd"], reply["first_stamps"], reply["sent"], strict=True
        ):
            if stamp not in received:
                unmatched += 1
                continue
            fake_ns = stamp - received[stamp]
            fake_first.append(fake_ns)
            overhead.append(ttfd_ns - fake_ns)
            to_model.append(received[stamp] - sent)
    for values in (ttfd, fake_first, overhead, to_model, latencies):
        values.sort()
    verdicts: dict[str, int] = {}
    prompt_errors: dict[str, int] = {}
    for reply in replies:
        for key, count in reply["verdicts"].items():
            verdicts[key] = verdicts.get(key, 0) + count
        for key, count in reply["prompt_errors"].items():
            prompt_errors[key] = prompt_errors.get(key, 0) + count
    members = sum(reply["members"] for reply in replies)
    complete = verdicts.pop("complete", 0)
    return AssistantFigures(
        rooms=len(rooms),
        members=members,
        tokens=answer_tokens,
        rate=rate,
        answers_expected=members,
        complete=complete,
        incomplete=members - complete,
        incomplete_reasons=verdicts,
        prompt_errors=prompt_errors,
        unacked_prompts=sum(reply["unacked_prompts"] for reply in replies),
        deltas=sum(reply["deltas"] for reply in replies),
        ttfd_p50_ms=_ms(ttfd, 0.5),
        ttfd_p99_ms=_ms(ttfd, 0.99),
        fake_pacing_ms=1000.0 / rate,
        fake_first_p50_ms=_ms(fake_first, 0.5),
        fake_first_p99_ms=_ms(fake_first, 0.99),
        overhead_p50_ms=_ms(overhead, 0.5),
        overhead_p99_ms=_ms(overhead, 0.99),
        to_model_p50_ms=_ms(to_model, 0.5),
        to_model_p99_ms=_ms(to_model, 0.99),
        delivery_p50_ms=_ms(latencies, 0.5),
        delivery_p99_ms=_ms(latencies, 0.99),
        delivery_max_ms=(latencies[-1] / 1e6) if latencies else 0.0,
        unmatched_requests=unmatched,
        cpu=cpu,
    )
