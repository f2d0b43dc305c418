"""`scripts/check_lock.py`, which `make test` runs, fails when pyproject.toml and the locks part.

Each case copies the repository's pyproject.toml and locks into a temporary folder, breaks
one thing, and runs the script on that copy against this venv's installed packages.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FILES = ("pyproject.toml", "requirements.lock", "requirements-dev.lock")


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "check_lock.py"), "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    for name in FILES:
        shutil.copy(REPO / name, tmp_path / name)
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_the_repository_locks_agree_with_pyproject_and_the_venv(copy: Path) -> None:
    run = _check(copy)
    assert run.returncode == 0, run.stderr
    assert "complete" in run.stdout


def test_a_dependency_added_without_relocking_fails(copy: Path) -> None:
    _edit(copy / "pyproject.toml", '"segno>=1.6",', '"segno>=1.6",\n    "left-pad-nowhere>=1",')
    run = _check(copy)
    assert run.returncode == 1
    assert "left-pad-nowhere>=1 is declared in pyproject.toml but not locked" in run.stderr


def test_a_raised_lower_bound_that_the_lock_does_not_meet_fails(copy: Path) -> None:
    _edit(copy / "pyproject.toml", '"orjson>=3.10"', '"orjson>=99"')
    run = _check(copy)
    assert run.returncode == 1
    assert "does not satisfy pyproject's orjson>=99" in run.stderr


def test_a_transitive_dependency_missing_from_the_lock_fails(copy: Path) -> None:
    lock = copy / "requirements.lock"
    lines = lock.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("multidict=="))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith(" "))
    lock.write_text("".join(lines[:start] + lines[end:]))
    run = _check(copy)
    assert run.returncode == 1
    assert "requirements.lock: multidict, required by aiohttp" in run.stderr


def test_the_two_locks_pinning_one_package_differently_fails(copy: Path) -> None:
    lock = copy / "requirements-dev.lock"
    text = lock.read_text()
    pinned = next(line for line in text.splitlines() if line.startswith("orjson=="))
    _edit(lock, pinned, "orjson==0.0.1 \\")
    run = _check(copy)
    assert run.returncode == 1
    assert "orjson is pinned at" in run.stderr
