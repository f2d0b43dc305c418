"""An in-process websocket server speaking just enough Roomcast to script a client's test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer


class FakeConnection:
    def __init__(self, ws: web.WebSocketResponse, token: str) -> None:
        self.ws = ws
        self.token = token
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.done = asyncio.Event()

    async def receive(self, kind: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.frames.get()
                if kind is None or frame["type"] == kind:
                    return frame

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(frame))

    async def close(self, code: int) -> None:
        await self.ws.close(code=code)
        self.done.set()


class FakeServer:
    def __init__(self) -> None:
        self.connections: asyncio.Queue[FakeConnection] = asyncio.Queue()
        self.count = 0
        self.url = ""
        self.refusals: list[web.Response] = []  # the next upgrades get these instead
        self.refused_at: list[float] = []  # loop times of the refusals

    async def next_connection(self, timeout: float = 5.0) -> FakeConnection:
        async with asyncio.timeout(timeout):
            return await self.connections.get()

    async def handler(self, request: web.Request) -> web.StreamResponse:
        if self.refusals:
            self.refused_at.append(asyncio.get_running_loop().time())
            return self.refusals.pop(0)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.count += 1
        conn = FakeConnection(ws, token)
        user = {"id": "u1", "name": "Ada"}
        await ws.send_str(
            json.dumps(
                {"type": "ready", "user": user, "session": f"s{self.count}", "heartbeat": 25}
            )
        )
        self.connections.put_nowait(conn)
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                conn.frames.put_nowait(json.loads(message.data))
        conn.done.set()
        return ws


@asynccontextmanager
async def fake_server() -> AsyncIterator[FakeServer]:
    fake = FakeServer()
    app = web.Application()
    app.router.add_get("/ws", fake.handler)
    server = TestServer(app)
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    try:
        yield fake
    finally:
        await server.close()
