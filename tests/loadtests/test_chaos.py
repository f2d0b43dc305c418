"""The chaos scenario: its audit counts what it says it counts, and a short run is clean.

The short run kills one instance, restarts Redis, and then reads every room's history
back. It passed every time it was run on this tree, so its figures are held at 0 here:
a failure is a message lost, duplicated, skipped or reordered by the server.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadtests.chaos_audit import FIGURES, audit
from loadtests.chaos_client import Ack, ChaosClient, Outgoing, Seen

REPO = Path(__file__).resolve().parents[2]


class _Clock:
    def since(self, moment: float | None = None) -> float:
        return 0.0


def _client(name: str, *, rate: float = 5.0) -> ChaosClient:
    return ChaosClient(
        name,
        "token",
        "R",
        ["http://127.0.0.1:1"],
        rate=rate,
        rng=random.Random(0),
        backoff=(0.5, 5.0),
        resend_after=10.0,
    )


def _stored(seq: int, client_id: str) -> dict[str, object]:
    return {"type": "message", "room": "R", "seq": seq, "id": f"m{seq}", "client_id": client_id}


def test_audit_counts_each_kind_of_loss_against_the_stored_history() -> None:
    history = [_stored(1, "s00-1"), _stored(2, "s00-2"), _stored(3, "s00-2"), _stored(5, "s00-3")]
    sender = _client("s00")
    now = time.monotonic()
    sender.acks = {
        "s00-1": Ack(1, 0.1, now),
        "s00-2": Ack(2, 0.1, now),
        "s00-3": Ack(4, 0.1, now),  # stored as 5
        "s00-4": Ack(6, 0.1, now),  # not stored at all
    }
    sender.outbox = {"s00-5": Outgoing("s00-5", created=now, due=now)}
    for seq in (1, 2, 3, 5):
        sender.record_message(_stored(seq, "x"))
    reader = _client("r00", rate=0.0)
    for seq in (1, 3, 2, 3):  # skips 2, gets it late, gets 3 again; never gets 5
        reader.record_message(_stored(seq, "x"))
    reader.seen[3] = Seen("another id", "x")

    result = audit([sender, reader], {"R": history}, _Clock())

    counts = {name: getattr(result, name) for name, _ in FIGURES}
    assert counts == {
        "lost_acked": 1,
        "misacked": 1,
        "lost_readers": 1,
        "mismatched": 1,
        "duplicated": 1,
        "gaps_db": 1,
        "gaps_readers": 1 + 1,  # the reader skipped 2; the sender skipped 4
        "reordered": 1,
        "unacked": 1,
    }
    assert result.acked == 4 and result.stored == 4 and not result.clean
    assert reader.tally.redelivered == 1


def _figures(out: str) -> dict[str, float]:
    names = ["acked", "stored", *(name for name, _ in FIGURES), "longest_wait"]
    figures = {}
    for name in names:
        match = re.search(rf"^{name}\s+(\d+(?:\.\d+)?)\s", out, re.MULTILINE)
        assert match, f"{name} is not printed:\n{out}"
        figures[name] = float(match[1])
    return figures


@pytest.mark.slow
@pytest.mark.timeout(300)  # the run takes 30-60 s on two busy cores; this is a safety net
def test_short_chaos_run_loses_duplicates_skips_and_reorders_nothing() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "loadtests.chaos", "--short"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
    )
    out = run.stdout
    figures = _figures(out)
    for event in (
        "stop Redis",
        "done: start Redis",
        "SIGKILL instance b",
        "done: start instance b",
    ):
        assert event in out, out
    assert figures["acked"] > 0 and figures["stored"] == figures["acked"], out
    assert {name: figures[name] for name, _ in FIGURES} == dict.fromkeys(
        (name for name, _ in FIGURES), 0.0
    ), out
    assert "verdict: PASS" in out and run.returncode == 0, out + run.stderr[-4000:]
