"""The reconnect-storm benchmark's quick mode runs end to end and every client joins.

No thresholds on speed: the figures depend on the machine. What must hold anywhere is
that the baseline and Roomcast each get the whole storm, every client reaches `joined`
with nothing refused, timed out or closed, and every figure is printed and written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.loadtests.quick import NUMBER, printed_section, run_quick

QUICK_CLIENTS = 300
SERVERS = ("baseline", "roomcast pg")


@pytest.mark.slow
@pytest.mark.timeout(180)  # the run itself takes well under a minute; this is a safety net
def test_quick_storm_joins_every_client_on_roomcast_and_the_baseline(tmp_path: Path) -> None:
    figures_path = tmp_path / "storm.json"
    out = run_quick("loadtests.storm", figures_path)

    for server in SERVERS:
        section = printed_section(out, f"== {server}: {QUICK_CLIENTS} clients, 50 at a time;")
        rate = re.search(
            rf"^connects\+joins/s\s+({NUMBER})\s+\((\d+) of (\d+) joined", section, re.M
        )
        assert rate, section
        assert float(rate[1]) > 0 and rate[2] == rate[3] == str(QUICK_CLIENTS), section
        for label in ("time to joined ms", "  to ready ms", "  to 101 ms", "  to TCP connected ms"):
            times = re.search(
                rf"^{label}\s+p50\s+({NUMBER})\s+p99\s+({NUMBER})\s+max\s+({NUMBER})", section, re.M
            )
            assert times, section
            assert 0 <= float(times[1]) <= float(times[2]) <= float(times[3]), section
        assert re.search(r"^failures\s+0$", section, re.M), section
        assert re.search(r"^closed after joined\s+0$", section, re.M), section
        assert re.search(rf"^CPU %\s+server {NUMBER}", section, re.M), section
        assert re.search(rf"per idle joined client {NUMBER} KiB", section), section
    roomcast = printed_section(out, "== roomcast pg:")
    assert re.search(rf"postgres {NUMBER}", roomcast), roomcast

    summary = printed_section(out, "== Summary ==")
    for server in SERVERS:
        row = re.search(rf"^{server}\s+(\d+)\s+(\d+)\s+({NUMBER})\s+({NUMBER})", summary, re.M)
        assert row, summary
        assert (int(row[1]), int(row[2])) == (QUICK_CLIENTS, 0), summary
    assert re.search(
        rf"^roomcast pg / baseline connects\+joins per second: {NUMBER}$", summary, re.M
    )

    figures = json.loads(figures_path.read_text())
    assert figures["setup"]["clients"] == QUICK_CLIENTS
    assert figures["setup"]["concurrency"] == 50
    for server in SERVERS:
        storm = figures["servers"][server]
        assert storm["joined"] == QUICK_CLIENTS
        assert storm["failed"] == 0 and storm["failures"] == {}
        assert storm["lost_after_join"] == {}
        assert storm["rate"] > 0
        for milestone in ("connected_ms", "upgraded_ms", "ready_ms", "joined_ms"):
            times = storm[milestone]
            assert 0 <= times["p50"] <= times["p99"] <= times["max"], milestone
        assert storm["joined_ms"]["p50"] > 0
        assert storm["rss_after_mib"] > 0 and "server" in storm["cpu"]
    assert "postgres" in figures["servers"]["roomcast pg"]["cpu"]
    assert figures["ratios"]["roomcast pg"] > 0
