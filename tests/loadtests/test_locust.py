"""`make locust`, the README's load command, runs the locust scenarios against a real server.

The Makefile target installs what it needs (the dev lock) and points locust at HOST; here
HOST is one real instance over the suite's PostgreSQL and Redis, and the run is shortened.
Locust exits non-zero when any request failed, so a zero exit with both scenarios' request
names in its statistics is the proof that they ran and nothing failed.
"""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from tests.instances import REPO, launched


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_make_locust_runs_both_scenarios_against_a_live_server_without_failures(
    database, redis, database_url, redis_url, tmp_path
) -> None:
    async with launched(database_url, redis_url, tmp_path) as instances:
        (server,) = await instances(1)
        run = await _make_locust(server.url)

    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    for request_name in ("/api/v1/me", "WS send→ack", "WS send→message"):
        assert request_name in output, output[-4000:]


async def _make_locust(host: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        ["make", "--no-print-directory", "locust", f"HOST={host}", "ARGS=-t 6s -u 4 -r 4"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=100,
    )
