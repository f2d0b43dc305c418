"""The chaos scenario's verdict: what the clients were acked and received against the rooms'
stored history, read back through `GET /api/v1/rooms/{id}/messages` with `cursor`.

Every figure is defined in `FIGURES`, and printed with its definition, so the output
says exactly what was counted.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from loadtests.chaos_client import ChaosClient

PAGE = 200

#: The figures that must be 0, in print order, with what each counts.
FIGURES: tuple[tuple[str, str], ...] = (
    ("lost_acked", "acked client_ids with no stored message"),
    ("misacked", "acks whose seq differs from the stored seq of that client_id"),
    ("lost_readers", "(client, seq) stored in the client's room, never received by it"),
    ("mismatched", "(client, seq) received with another message id than the stored one"),
    ("duplicated", "stored messages beyond the first with the same client_id"),
    ("gaps_db", "seqs missing from 1..last seq of a room's stored history"),
    ("gaps_readers", "seqs a client skipped: a new seq above its highest + 1"),
    ("reordered", "seqs a client got after a higher one, not having had them before"),
    ("unacked", "messages still waiting for an ack when the run ended"),
)


class Timeline(Protocol):
    def since(self, moment: float | None = None) -> float: ...


async def read_history(
    http: aiohttp.ClientSession, base: str, token: str, room: str
) -> list[dict[str, Any]]:
    """Every stored message of `room`, oldest first, paging forward with `cursor`."""
    items: list[dict[str, Any]] = []
    params = {"after_seq": "0", "limit": str(PAGE)}
    headers = {"Authorization": f"Bearer {token}"}
    while True:
        url = f"{base}/api/v1/rooms/{room}/messages"
        async with http.get(url, params=params, headers=headers) as answer:
            if answer.status != 200:
                raise RuntimeError(f"GET {url}: {answer.status} {await answer.text()}")
            page = await answer.json()
        items.extend(page["items"])
        if page["next_cursor"] is None:
            return items
        params = {"cursor": page["next_cursor"], "limit": str(PAGE)}


@dataclass
class Audit:
    """The figures of one run; `clean` when every one of FIGURES is 0."""

    acked: int = 0
    stored: int = 0
    lost_acked: int = 0
    misacked: int = 0
    lost_readers: int = 0
    mismatched: int = 0
    duplicated: int = 0
    gaps_db: int = 0
    gaps_readers: int = 0
    reordered: int = 0
    unacked: int = 0
    longest_wait: float = 0.0
    longest_note: str = ""
    examples: list[str] = field(default_factory=list)
    info: dict[str, object] = field(default_factory=dict)
    clients: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return all(getattr(self, name) == 0 for name, _ in FIGURES)

    def note(self, example: str) -> None:
        if len(self.examples) < 12:
            self.examples.append(example)

    def report(self, say: Callable[[str], None], logs: Iterable[Path]) -> None:
        if self.clients:
            say("== Clients ==")
            for line in self.clients:
                say(line)
        say("== Chaos result ==")
        say(f"{'acked':<14}{self.acked:>8}  messages acked (one per client_id)")
        say(f"{'stored':<14}{self.stored:>8}  messages in the rooms' history")
        for name, meaning in FIGURES:
            say(f"{name:<14}{getattr(self, name):>8}  {meaning}")
        say(
            f"{'longest_wait':<14}{self.longest_wait:>8.2f}  s, longest a message waited "
            f"from creation to its ack{self.longest_note}"
        )
        for key, value in self.info.items():
            say(f"  {key}: {value}")
        for line in self.examples:
            say(f"  e.g. {line}")
        for log in logs:
            say(f"  {log.name}: {_log_errors(log)}")
        say(f"verdict: {'PASS' if self.clean else 'FAIL'}")


def _log_errors(log: Path) -> str:
    with_levels = Counter[str]()
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    for line in lines:
        for level in ("CRITICAL", "ERROR", "Traceback"):
            if level in line:
                with_levels[level] += 1
    return ", ".join(f"{n} {level}" for level, n in sorted(with_levels.items())) or "no errors"


def audit(
    clients: list[ChaosClient],
    history: dict[str, list[dict[str, Any]]],
    clock: Timeline,
    verbose: bool = False,
) -> Audit:
    """Compare every client's acks and receipts with the stored history of its room."""
    result = Audit(stored=sum(len(items) for items in history.values()))
    by_client_id: dict[str, list[tuple[str, int]]] = {}
    for room, items in history.items():
        _audit_room(result, room, items)
        for item in items:
            if item.get("client_id") is not None:
                by_client_id.setdefault(item["client_id"], []).append((room, int(item["seq"])))
    result.duplicated = sum(len(places) - 1 for places in by_client_id.values())
    for client in clients:
        _audit_client(result, client, history[client.room], by_client_id)
    _sum_tallies(result, clients, clock)
    if verbose:
        result.clients = [_client_line(client) for client in clients]
    return result


def _client_line(client: ChaosClient) -> str:
    tally = client.tally
    return (
        f"{client.name} room={client.room[:8]} acked={len(client.acks)} "
        f"unacked={client.unacked()} received={len(client.seen)} highest={client.highest} "
        f"connects={tally.connects} failed={dict(tally.failed_at)} "
        f"closes={dict(tally.close_codes)} errors={dict(tally.send_errors)} "
        f"silent={tally.silent} instances={'>'.join(client.visited)}"
    )


def _audit_room(result: Audit, room: str, items: list[dict[str, Any]]) -> None:
    seqs = [int(item["seq"]) for item in items]
    missing = set(range(1, max(seqs, default=0) + 1)) - set(seqs)
    result.gaps_db += len(missing)
    if missing:
        result.note(f"room {room}: seqs {sorted(missing)[:10]} missing from the history")


def _audit_client(
    result: Audit,
    client: ChaosClient,
    items: list[dict[str, Any]],
    by_client_id: dict[str, list[tuple[str, int]]],
) -> None:
    for client_id, ack in client.acks.items():
        result.acked += 1
        stored = by_client_id.get(client_id)
        if not stored:
            result.lost_acked += 1
            result.note(f"{client_id} acked with seq {ack.seq}, not stored")
        elif (client.room, ack.seq) not in stored:
            result.misacked += 1
            result.note(f"{client_id} acked with seq {ack.seq}, stored as {stored}")
    result.misacked += client.tally.ack_conflicts
    result.unacked += client.unacked()
    for item in items:
        seq = int(item["seq"])
        seen = client.seen.get(seq)
        if seen is None:
            result.lost_readers += 1
            result.note(f"{client.name} never received seq {seq} ({item.get('client_id')})")
        elif seen.message_id != str(item["id"]):
            result.mismatched += 1
            result.note(f"{client.name} got seq {seq} as {seen.message_id}, stored {item['id']}")
    result.gaps_readers += client.tally.gaps
    result.reordered += client.tally.reordered


def _sum_tallies(result: Audit, clients: list[ChaosClient], clock: Timeline) -> None:
    now = time.monotonic()
    for client in clients:
        waits = [(ack.waited, ack.created, "acked") for ack in client.acks.values()]
        waits += [
            (now - item.created, item.created, "never acked") for item in client.outbox.values()
        ]
        for waited, created, how in waits:
            if waited > result.longest_wait:
                result.longest_wait = waited
                result.longest_note = (
                    f" ({client.name}, made at t={clock.since(created):.2f} s, {how})"
                )
    tallies = [client.tally for client in clients]
    result.info = {
        "sends (first and resent)": sum(t.sends for t in tallies),
        "send errors by code": dict(sum((t.send_errors for t in tallies), Counter())),
        "join errors by code": dict(sum((t.join_errors for t in tallies), Counter())),
        "silent sends (no reply, resent)": sum(t.silent for t in tallies),
        "connections, failed connects": (
            f"{sum(t.connects for t in tallies)}, {sum(t.connect_failures for t in tallies)}"
        ),
        "close codes": dict(sum((t.close_codes for t in tallies), Counter())),
        "re-deliveries dropped by seq": sum(t.redelivered for t in tallies),
        "acks above highest seq + 1 when they came": sum(t.acks_ahead for t in tallies),
    }
