"""`python run.py ...` as an operator runs it: a bad setting is one line on stderr, exit 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """run.py with `args` in a clean environment plus `env`, its output captured."""
    base = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    return subprocess.run(  # noqa: S603 - our own interpreter on our own script
        [sys.executable, "run.py", *args],
        cwd=REPO,
        env={**base, "VAR_DIR": str(tmp_path / "var"), **env},
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_a_malformed_database_url_is_one_line_naming_it(tmp_path, command: str) -> None:
    done = run(tmp_path, command, DATABASE_URL="nonsense")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "configuration error: DATABASE_URL: not a database URL; expected "
        "postgresql://user:password@host:5432/name or sqlite:///path/to/roomcast.db\n"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "eighty"),
        ("WS_HEARTBEAT", "-1"),
        ("AI_RETRIES", "2.5"),
        ("DATABASE_URL", "postgresql://roomcast:hunter22@db:port/roomcast"),
        ("REDIS_URL", "localhost:6379"),
        ("LOG_FORMAT", "xml"),
        ("LOG_LEVEL", "chatty"),
        ("SMTP_URL", "smtp.example.com"),
    ],
)
def test_every_bad_setting_stops_serve_with_one_line_and_status_2(
    tmp_path, name: str, value: str
) -> None:
    done = run(tmp_path, "serve", **{name: value})
    assert (done.returncode, done.stdout) == (2, "")
    [line] = done.stderr.splitlines()
    assert re.match(rf"configuration error: {name}\b", line), line
    assert "hunter22" not in line


def test_a_bad_setting_stops_migrate_before_it_touches_anything(tmp_path) -> None:
    done = run(tmp_path, "migrate", REDIS_CLUSTER="perhaps")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "configuration error: REDIS_CLUSTER must be 1/true/yes or 0/false/no, got 'perhaps'\n"
    )
    assert not (tmp_path / "var" / "roomcast.db").exists()
