"""The fan-out benchmark's quick mode runs end to end and reports sound figures.

No thresholds on speed: the figures depend on the machine. What must hold anywhere is
that every section is printed with numbers, and that at the quick mode's low rates
nothing is lost or reordered, on Roomcast and on the baseline alike.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.loadtests.quick import NUMBER, printed_section, run_quick

# offered, delivered, p50, p99, max, ack p99, lost, ooo, refused, CPU, RSS, db CPU, client CPU
STEP_LINE = re.compile(r"^\s*" + r"\s+".join([f"({NUMBER})"] * 13) + r"\s+\S", re.MULTILINE)
SECTIONS = (
    "== Setup ==",
    "== roomcast fan-out:",
    "== baseline fan-out:",
    "== Idle sessions:",
    "== Summary ==",
)


@pytest.mark.slow
@pytest.mark.timeout(180)  # the run itself takes well under a minute; this is a safety net
def test_quick_fanout_prints_every_section_with_nothing_lost_or_reordered(tmp_path):
    figures_path = tmp_path / "figures.json"
    out = run_quick("loadtests.fanout", figures_path)
    for title in SECTIONS:
        assert title in out, out

    for server in ("roomcast", "baseline"):
        steps = STEP_LINE.findall(printed_section(out, f"== {server} fan-out:"))
        assert len(steps) == 2, out
        for step in steps:
            offered, delivered, lost, out_of_order = (float(step[i]) for i in (0, 1, 6, 7))
            assert offered > 0 and delivered > 0
            assert lost == 0 and out_of_order == 0, step

    idle = printed_section(out, "== Idle sessions:")
    for server in ("roomcast", "baseline"):
        match = re.search(rf"^{server}\s+sessions=(\d+) .*per session=({NUMBER}) KiB", idle, re.M)
        assert match and int(match[1]) == 200, idle
    assert re.search(rf"ratio of sustained rates \(Roomcast / baseline\): {NUMBER}", out)

    figures = json.loads(figures_path.read_text())
    for server in ("roomcast", "baseline"):
        for step in figures["servers"][server]["steps"]:
            assert step["lost"] == 0 and step["reordered"] == 0 and step["delivered"] > 0
        assert figures["idle"][server]["sessions"] == 200


def _run_quick(tmp_path: Path, *flags: str) -> tuple[str, dict[str, object]]:
    figures_path = tmp_path / "figures.json"
    out = run_quick("loadtests.fanout", figures_path, *flags)
    return out, json.loads(figures_path.read_text())


@pytest.mark.slow
@pytest.mark.timeout(180)  # the run itself takes seconds; this is a safety net
def test_quick_assistant_prints_ttfd_overhead_and_delivery_with_every_answer_complete(
    tmp_path,
):
    out, figures = _run_quick(tmp_path, "--assistant")
    for title in ("== Setup ==", "== Assistant: 4 rooms x 3 members"):
        assert title in out, out
    section = printed_section(out, "== Assistant:")
    for label in (
        "TTFD (send -> first ai.delta)",
        "fake first-token time (measured)",
        "Roomcast TTFD overhead",
        "delta delivery latency",
    ):
        match = re.search(rf"^{re.escape(label)}\s+({NUMBER})\s+({NUMBER})", section, re.M)
        assert match, section
        assert float(match[1]) <= float(match[2]), section  # p50 <= p99
    assert re.search(r"^answers: 12 expected, complete=12 incomplete=0 ", section, re.M), out
    assert "refused prompts=0" in section, out
    assert "first token is not in the fake's log" not in out, out
    cpu = re.search(rf"^CPU over the scenario: server ({NUMBER})% \(its core busy ", section, re.M)
    assert cpu and float(cpu[1]) > 0, section

    assistant = figures["assistant"]
    assert isinstance(assistant, dict)
    assert assistant["complete"] == 12 and assistant["incomplete"] == 0
    assert assistant["unmatched_requests"] == 0
    assert assistant["deltas"] >= 12  # at least one per member (deltas may merge)
    assert assistant["ttfd_p50_ms"] > 0 and assistant["fake_first_p50_ms"] > 0
    assert assistant["delivery_p50_ms"] > 0
    assert set(assistant["cpu"]) == {"server", "server_core", "clients", "fake", "client_cores"}


@pytest.mark.slow
@pytest.mark.timeout(180)  # the run itself takes under a minute; this is a safety net
def test_quick_two_instances_prints_redis_cpu_beside_single_instance_nothing_lost(tmp_path):
    out, figures = _run_quick(tmp_path, "--instances", "2")
    for title in (
        "== roomcast fan-out:",
        "== roomcast x2 fan-out:",
        "== Instances: 1 in-process vs 2 over Redis ==",
    ):
        assert title in out, out
    multi = printed_section(out, "== roomcast x2 fan-out:")
    assert re.search(r"all on core 0; clients on core\(s\) \[1\]", multi), multi
    steps = STEP_LINE.findall(multi)
    assert len(steps) == 2, out
    for step in steps:
        offered, delivered, lost, out_of_order = (float(step[i]) for i in (0, 1, 6, 7))
        assert offered > 0 and delivered > 0
        assert lost == 0 and out_of_order == 0, step
    assert len(re.findall(rf"\(redis CPU {NUMBER}%\)", multi)) == 2, multi

    table = printed_section(out, "== Instances:")
    row = re.compile(
        rf"^\s*({NUMBER}) \|\s+({NUMBER})\s+({NUMBER})\s+({NUMBER}) \|"
        + rf"\s+({NUMBER})" * 7
        + r"\s*$",
        re.M,
    )
    rows = row.findall(table)
    assert len(rows) == 2, table
    for cells in rows:
        assert float(cells[1]) > 0 and float(cells[4]) > 0  # delivered/s, 1 and 2 instances
        assert float(cells[7]) == 0 and float(cells[8]) == 0  # lost, out of order
    assert re.search(rf"sustained delivered/s: 1 instance {NUMBER}, 2 instances {NUMBER}", table)

    servers = figures["servers"]
    assert isinstance(servers, dict)
    assert figures["instances"] == 2
    for name in ("roomcast", "roomcast_instances"):
        assert len(servers[name]["steps"]) == 2
        for step in servers[name]["steps"]:
            assert step["lost"] == 0 and step["reordered"] == 0 and step["delivered"] > 0
    for step in servers["roomcast_instances"]["steps"]:
        assert step["extra"]["redis_cpu"] >= 0
