"""Running a load test's quick mode from a test, and reading its printed sections."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NUMBER = r"-?\d+(?:\.\d+)?"


def run_quick(module: str, figures_path: Path, *flags: str) -> str:
    """`python -m <module> --quick <flags> --json <figures_path>`; its output, once it succeeded."""
    run = subprocess.run(
        [sys.executable, "-m", module, "--quick", *flags, "--json", str(figures_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return run.stdout


def printed_section(text: str, title: str) -> str:
    """The printed section that starts with `title`, up to the next `== ` heading."""
    start = text.index(title)
    following = text.find("\n== ", start + len(title))
    return text[start : following if following >= 0 else len(text)]
