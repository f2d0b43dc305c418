"""What a running server writes: every line one JSON object with LOG_FORMAT=json, and each
access line carrying the id its response's X-Request-ID carried."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.services import free_port

REPO = Path(__file__).resolve().parents[2]


class Server:
    """`run.py migrate` then `run.py serve` on SQLite, their output kept in one file."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = tmp_path / "output.log"
        inherited = {
            name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ
        }
        self.env = {**inherited, "VAR_DIR": str(tmp_path / "var"), "PORT": str(self.port), **env}

    async def _run(self, command: str) -> asyncio.subprocess.Process:
        with self.output.open("ab") as out:
            return await asyncio.create_subprocess_exec(
                sys.executable, "run.py", command, cwd=REPO, env=self.env, stdout=out, stderr=out
            )

    async def start(self) -> None:
        migrate = await self._run("migrate")
        assert await migrate.wait() == 0, self.output.read_text()
        self.process = await self._run("serve")
        async with aiohttp.ClientSession() as session:
            for _ in range(600):
                try:
                    async with session.get(f"{self.url}/health") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                assert self.process.returncode is None, self.output.read_text()
                await asyncio.sleep(0.05)
        raise AssertionError(f"not serving:\n{self.output.read_text()}")

    async def stop(self) -> list[str]:
        """SIGTERM, wait for the exit, and the lines both commands wrote."""
        self.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(self.process.wait(), 20) == 0
        return self.output.read_text().splitlines()


async def served_ids(server: Server) -> list[str]:
    """The X-Request-ID of a request that sent none and of one that sent its own."""
    ids = []
    async with aiohttp.ClientSession() as session:
        for headers in ({}, {"X-Request-ID": "client-chosen-1"}):
            async with session.get(f"{server.url}/api/v1/nowhere", headers=headers) as response:
                assert response.status == 404
                ids.append(response.headers["X-Request-ID"])
    assert ids[1] == "client-chosen-1"
    return ids


async def test_with_log_format_json_every_line_is_json_and_access_lines_carry_the_request_id(
    tmp_path,
) -> None:
    server = Server(tmp_path, LOG_FORMAT="json")
    await server.start()
    try:
        ids = await served_ids(server)
    finally:
        lines = await server.stop()
    entries: list[dict[str, Any]] = [json.loads(line) for line in lines]  # each one parses
    assert all(isinstance(entry, dict) for entry in entries)
    [serving] = [e for e in entries if e["msg"].startswith("Roomcast serving on")]
    assert serving["urls"] == [server.url]
    access = [e for e in entries if e["logger"] == "aiohttp.access"]
    assert [(e["request_id"], e["path"], e["status"]) for e in access[-2:]] == [
        (ids[0], "/api/v1/nowhere", 404),
        (ids[1], "/api/v1/nowhere", 404),
    ]


async def test_text_access_lines_show_the_request_id_in_brackets(tmp_path) -> None:
    server = Server(tmp_path, LOG_FORMAT="text")
    await server.start()
    try:
        ids = await served_ids(server)
    finally:
        lines = await server.stop()
    access = [line for line in lines if " aiohttp.access " in line][-2:]
    for line, request_id in zip(access, ids, strict=True):
        pattern = rf".* INFO  aiohttp\.access \[{request_id}\] GET /api/v1/nowhere 404 [0-9.]+ms"
        assert re.fullmatch(pattern, line), line
    assert not any("[None]" in line for line in lines)
