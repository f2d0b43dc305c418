"""Figures of a benchmark run: merging the workers' answers, the verdicts, the tables.

A step is *sustained* when its p99 send-to-receipt latency is under 100 ms and nothing
was lost, reordered, refused, left unacked or disconnected; a server's sustained rate
is the highest sustained step's delivered messages/s (deliveries to subscribers).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

P99_LIMIT_MS = 100.0
SATURATED_P99_MS = 500.0
CLIENT_BUSY = 90.0  # client CPU % from which its own delays may show in the figures
OTHER_LOAD = 15.0  # server core busy % beyond the server's own: someone else ran there


def percentile(ordered: Sequence[int], fraction: float) -> int:
    """Nearest-rank percentile of an ascending sequence (0 when empty)."""
    if not ordered:
        return 0
    rank = min(len(ordered) - 1, max(0, int(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass
class StepFigures:
    """One step of one server, merged over the client workers."""

    target_rate: float
    offered: float  # messages/s actually sent over the window
    sent: int
    acked: int
    unacked: int
    errors: dict[str, int]
    expected_delivery_rate: float
    delivered_rate: float  # deliveries to subscribers per second, within the window
    delivered: int  # deliveries of this step's messages, drain included
    p50_ms: float
    p99_ms: float
    max_ms: float
    ack_p50_ms: float
    ack_p99_ms: float
    lost: int
    reordered: int
    duplicates: int
    closed: dict[str, int]
    drained: bool
    server_cpu: float = 0.0
    server_rss_mib: float = 0.0
    client_cpu: float = 0.0
    db_cpu: float = 0.0
    server_core_busy: float = 0.0  # the server core's busy %, whoever ran there
    client_cores_busy: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sustained(self) -> bool:
        return (
            self.p99_ms < P99_LIMIT_MS
            and self.lost == 0
            and self.reordered == 0
            and self.unacked == 0
            and not self.errors
            and not self.closed
            and self.drained
            and self.delivered > 0
        )

    @property
    def saturated(self) -> bool:
        """Clearly past capacity: no point in offering more."""
        return not self.sustained and (
            self.p99_ms >= SATURATED_P99_MS
            or self.lost > 0
            or bool(self.closed)
            or bool(self.errors)
            or not self.drained
            or self.delivered_rate < 0.8 * self.expected_delivery_rate
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "sustained": self.sustained}


def _ms(nanoseconds: int) -> float:
    return nanoseconds / 1e6


def merge_step(target: float, subscribers: int, replies: list[dict[str, Any]]) -> StepFigures:
    """Add up the workers' answers to one `Step`."""
    latencies = sorted(x for reply in replies for x in reply["latencies"])
    acks = sorted(x for reply in replies for x in reply["ack_latencies"])
    errors: Counter[str] = Counter()
    closed: Counter[str] = Counter()
    for reply in replies:
        errors.update(reply["errors"])
        closed.update({str(code): n for code, n in reply["closed"].items()})
    window = max(sum(reply["window"] for reply in replies) / len(replies), 1e-6)
    sent = sum(reply["sent"] for reply in replies)
    acked = sum(reply["acked"] for reply in replies)
    offered = sent / window
    return StepFigures(
        target_rate=target,
        offered=offered,
        sent=sent,
        acked=acked,
        unacked=max(0, sent - acked - sum(errors.values())),
        errors=dict(errors),
        expected_delivery_rate=offered * subscribers,
        delivered_rate=sum(reply["delivered_window"] for reply in replies) / window,
        delivered=sum(reply["delivered"] for reply in replies),
        p50_ms=_ms(percentile(latencies, 0.50)),
        p99_ms=_ms(percentile(latencies, 0.99)),
        max_ms=_ms(latencies[-1] if latencies else 0),
        ack_p50_ms=_ms(percentile(acks, 0.50)),
        ack_p99_ms=_ms(percentile(acks, 0.99)),
        lost=sum(reply["lost"] for reply in replies),
        reordered=sum(reply["reordered"] for reply in replies),
        duplicates=sum(reply["duplicates"] for reply in replies),
        closed=dict(closed),
        drained=all(reply["drained"] for reply in replies),
        extra={"late": sum(reply["late"] for reply in replies)},
    )


def sustained_rate(steps: Sequence[StepFigures]) -> tuple[float, float]:
    """(delivered/s, offered msgs/s) of the highest sustained step; zeros when none."""
    best = max((s for s in steps if s.sustained), key=lambda s: s.delivered_rate, default=None)
    return (best.delivered_rate, best.offered) if best else (0.0, 0.0)


STEP_HEADER = (
    f"{'offered/s':>10} {'delivered/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
    f"{'ack p99':>8} {'lost':>6} {'ooo':>5} {'refused':>7} {'srv CPU%':>8} {'srv RSS MiB':>11} "
    f"{'db CPU%':>7} {'cli CPU%':>8} {'core busy% s/c':>14}  verdict"
)


def step_line(step: StepFigures) -> str:
    refused = sum(step.errors.values()) + step.unacked
    verdict = "sustained" if step.sustained else "saturated" if step.saturated else "over p99"
    if step.client_cpu >= CLIENT_BUSY:
        verdict += " (client busy)"
    if step.server_core_busy - step.server_cpu >= OTHER_LOAD:
        verdict += " (other load on the server core)"
    if "redis_cpu" in step.extra:
        verdict += f" (redis CPU {step.extra['redis_cpu']:.0f}%)"
    if step.closed:
        verdict += f" closed={step.closed}"
    if step.errors:
        verdict += f" errors={step.errors}"
    return (
        f"{step.offered:>10.0f} {step.delivered_rate:>12.0f} {step.p50_ms:>8.1f} "
        f"{step.p99_ms:>8.1f} {step.max_ms:>8.1f} {step.ack_p99_ms:>8.1f} {step.lost:>6d} "
        f"{step.reordered:>5d} {refused:>7d} {step.server_cpu:>8.0f} {step.server_rss_mib:>11.1f} "
        f"{step.db_cpu:>7.0f} {step.client_cpu:>8.0f} "
        f"{step.server_core_busy:>7.0f}/{step.client_cores_busy:<6.0f}  {verdict}"
    )


@dataclass
class IdleFigures:
    """RSS of a server before and after `sessions` idle, joined sessions."""

    sessions: int
    warmup_sessions: int
    rss_before_mib: float
    rss_after_mib: float
    connect_seconds: float

    @property
    def kib_per_session(self) -> float:
        if not self.sessions:
            return 0.0
        return (self.rss_after_mib - self.rss_before_mib) * 1024 / self.sessions

    def line(self, name: str) -> str:
        return (
            f"{name:<10} sessions={self.sessions} RSS before={self.rss_before_mib:.1f} MiB "
            f"after={self.rss_after_mib:.1f} MiB per session={self.kib_per_session:.1f} KiB "
            f"(connected+joined in {self.connect_seconds:.1f} s)"
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "kib_per_session": self.kib_per_session}


def summary_lines(
    roomcast: Sequence[StepFigures],
    baseline: Sequence[StepFigures],
    idle: dict[str, IdleFigures],
) -> list[str]:
    """The closing table: sustained rates, their ratio, idle memory."""
    ours, ours_offered = sustained_rate(roomcast)
    theirs, theirs_offered = sustained_rate(baseline)
    ratio = ours / theirs if theirs else 0.0
    lines = [
        f"{'':<28} {'Roomcast':>12} {'baseline':>12} {'ratio':>7}",
        f"{'sustained delivered/s':<28} {ours:>12.0f} {theirs:>12.0f} {ratio:>7.2f}",
        f"{'  at offered msgs/s':<28} {ours_offered:>12.0f} {theirs_offered:>12.0f}",
        f"{'peak delivered/s (any step)':<28} {_peak(roomcast):>12.0f} {_peak(baseline):>12.0f}",
    ]
    if "roomcast" in idle and "baseline" in idle:
        a, b = idle["roomcast"].kib_per_session, idle["baseline"].kib_per_session
        lines.append(
            f"{'idle KiB per session':<28} {a:>12.1f} {b:>12.1f} {a / b if b else 0:>7.2f}"
        )
    lines.append(f"ratio of sustained rates (Roomcast / baseline): {ratio:.2f}")
    return lines


def _peak(steps: Sequence[StepFigures]) -> float:
    return max((s.delivered_rate for s in steps), default=0.0)


def instances_lines(
    single: Sequence[StepFigures], multi: Sequence[StepFigures], instances: int
) -> list[str]:
    """Per offered rate: the single instance's figures beside the several instances'."""
    by_rate = {s.target_rate: s for s in single}
    head = f"x{instances}"
    lines = [
        f"{'offered/s':>10} | {'1: deliv/s':>11} {'p50 ms':>7} {'p99 ms':>7} | "
        f"{head + ': deliv/s':>11} {'p50 ms':>7} {'p99 ms':>7} {'lost':>5} {'ooo':>4} "
        f"{'redis CPU%':>10} {'srv CPU%':>8}"
    ]
    for step in multi:
        one = by_rate.get(step.target_rate)
        left = (
            f"{one.delivered_rate:>11.0f} {one.p50_ms:>7.1f} {one.p99_ms:>7.1f}"
            if one
            else f"{'-':>11} {'-':>7} {'-':>7}"
        )
        lines.append(
            f"{step.offered:>10.0f} | {left} | {step.delivered_rate:>11.0f} "
            f"{step.p50_ms:>7.1f} {step.p99_ms:>7.1f} {step.lost:>5d} {step.reordered:>4d} "
            f"{step.extra.get('redis_cpu', 0.0):>10.0f} {step.server_cpu:>8.0f}"
        )
    ours, _ = sustained_rate(single)
    theirs, _ = sustained_rate(multi)
    lines.append(
        f"sustained delivered/s: 1 instance {ours:.0f}, {instances} instances {theirs:.0f}"
        + (f" (ratio {theirs / ours:.2f})" if ours else "")
    )
    return lines
