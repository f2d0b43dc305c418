"""The fan-out benchmark's quick mode runs end to end and reports sound figures.

No thresholds on speed: the figures depend on the machine. What must hold anywhere is
that every section is printed with numbers, and that at the quick mode's low rates
nothing is lost or reordered, on Roomcast and on the baseline alike.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NUMBER = r"-?\d+(?:\.\d+)?"
# offered, delivered, p50, p99, max, ack p99, lost, ooo, refused, CPU, RSS, db CPU, client CPU
STEP_LINE = re.compile(r"^\s*" + r"\s+".join([f"({NUMBER})"] * 13) + r"\s+\S", re.MULTILINE)
SECTIONS = (
    "== Setup ==",
    "== roomcast fan-out:",
    "== baseline fan-out:",
    "== Idle sessions:",
    "== Summary ==",
)


def _section(text: str, title: str) -> str:
    start = text.index(title)
    following = text.find("\n== ", start + len(title))
    return text[start : following if following >= 0 else len(text)]


@pytest.mark.slow
@pytest.mark.timeout(180)  # the run itself takes well under a minute; this is a safety net
def test_quick_fanout_prints_every_section_with_nothing_lost_or_reordered(tmp_path):
    figures_path = tmp_path / "figures.json"
    run = subprocess.run(
        [sys.executable, "-m", "loadtests.fanout", "--quick", "--json", str(figures_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    out = run.stdout
    for title in SECTIONS:
        assert title in out, out

    for server in ("roomcast", "baseline"):
        steps = STEP_LINE.findall(_section(out, f"== {server} fan-out:"))
        assert len(steps) == 2, out
        for step in steps:
            offered, delivered, lost, out_of_order = (float(step[i]) for i in (0, 1, 6, 7))
            assert offered > 0 and delivered > 0
            assert lost == 0 and out_of_order == 0, step

    idle = _section(out, "== Idle sessions:")
    for server in ("roomcast", "baseline"):
        match = re.search(rf"^{server}\s+sessions=(\d+) .*per session=({NUMBER}) KiB", idle, re.M)
        assert match and int(match[1]) == 200, idle
    assert re.search(rf"ratio of sustained rates \(Roomcast / baseline\): {NUMBER}", out)

    figures = json.loads(figures_path.read_text())
    for server in ("roomcast", "baseline"):
        for step in figures["servers"][server]["steps"]:
            assert step["lost"] == 0 and step["reordered"] == 0 and step["delivered"] > 0
        assert figures["idle"][server]["sessions"] == 200
