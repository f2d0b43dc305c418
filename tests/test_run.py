"""`python run.py ...` as an operator runs it: a bad setting is one line on stderr, exit 2."""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def environment(tmp_path: Path, **env: str) -> dict[str, str]:
    """A clean environment plus `env`, keeping its state under `tmp_path`."""
    base = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    return {**base, "VAR_DIR": str(tmp_path / "var"), **env}


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """run.py with `args` in a clean environment plus `env`, its output captured."""
    return subprocess.run(  # noqa: S603 - our own interpreter on our own script
        [sys.executable, "run.py", *args],
        cwd=REPO,
        env=environment(tmp_path, **env),
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


PRODUCTION = {"ENV": "production", "SECRET_KEY": "s" * 40}


def test_production_without_a_gemini_key_refuses_to_serve(tmp_path) -> None:
    done = run(tmp_path, "serve", **PRODUCTION)
    assert (done.returncode, done.stdout) == (2, "")
    [line] = done.stderr.splitlines()
    assert line.startswith("configuration error: GEMINI_API_KEY is required when ENV=production")
    assert "AI_PROVIDER=offline" in line


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def health(port: int) -> int | None:
    """The status of GET /health, or None while nothing answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def test_production_serves_the_offline_model_when_ai_provider_says_so(tmp_path) -> None:
    port = free_port()
    env = environment(tmp_path, **PRODUCTION, AI_PROVIDER="offline", PORT=str(port))
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        server = subprocess.Popen(  # noqa: S603 - our own interpreter on our own script
            [sys.executable, "run.py", "serve"],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while (status := health(port)) is None and server.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert status == 200, log.read_text()
    finally:
        server.terminate()  # this test's own process, by its PID
        server.wait(timeout=30)
    assert server.returncode == 0, log.read_text()
