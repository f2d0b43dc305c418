"""Websocket test helpers: a room shared by several signed-up users, and frame reading."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp

from storage import rooms, teams
from storage.db import Database
from tests.accounts import Account, signup


@dataclass
class Setup:
    accounts: list[Account]
    team_id: str
    room_id: str


async def shared_room(client: Any, database: Database, count: int = 2, **room: Any) -> Setup:
    """`count` users in one team (the first its owner) and one room of that team."""
    accounts = [await signup(client) for _ in range(count)]
    async with database.sessions.begin() as session:
        team = await teams.create(session, name="crew", owner_id=accounts[0].id)
        team_id = team.team.id
        for account in accounts[1:]:
            await teams.add_member(session, team_id, account.id, "member")
        created = await rooms.create(
            session,
            team_id=team_id,
            name=room.get("name", "lobby"),
            assistant=room.get("assistant", "off"),
            system_prompt=None,
            created_by=accounts[0].id,
        )
    return Setup(accounts, team_id, created.id)


async def connect(client: Any, account: Account, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect("/ws", headers=account.headers, **kwargs)
    ready = await receive(ws, "ready")
    assert ready["user"]["id"] == account.id
    return ws


async def receive(
    ws: aiohttp.ClientWebSocketResponse, kind: str | None = None, timeout: float = 5.0
) -> dict[str, Any]:
    """The next frame (of type `kind`, skipping others) as a dict."""
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.receive()
            if message.type is not aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"expected a text frame, got {message.type} {message.data}")
            frame = message.json()
            if kind is None or frame["type"] == kind:
                return frame


async def join(ws: aiohttp.ClientWebSocketResponse, room_id: str, **extra: Any) -> dict[str, Any]:
    await ws.send_json({"type": "join", "room": room_id, **extra})
    return await receive(ws, "joined")


async def closed_with(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> int | None:
    """Read until the server closes; the close code."""
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.receive()
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return ws.close_code
            if message.type is aiohttp.WSMsgType.ERROR:
                return ws.close_code


class RawSocket:
    """A websocket client on a bare socket with a tiny receive buffer: it can stop reading.

    aiohttp's client keeps reading into memory; this one leaves bytes in the kernel so the
    server sees a peer that does not read.
    """

    def __init__(self, port: int, token: str) -> None:
        import base64
        import os
        import socket

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def send_json(self, payload: dict[str, Any]) -> None:
        import json
        import os
        import struct

        data = json.dumps(payload).encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        if len(data) < 126:
            header += bytes([0x80 | len(data)])
        else:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(data))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(header + mask + masked)

    def read_until_close(self, timeout: float = 30.0) -> int:
        """Read every frame until the close frame; its code."""
        import struct

        self.sock.settimeout(timeout)
        while True:
            while len(self.buffer) < 2 or len(self.buffer) < self._frame_size():
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise AssertionError("connection ended without a close frame")
                self.buffer += chunk
            opcode = self.buffer[0] & 0x0F
            size = self._frame_size()
            frame, self.buffer = self.buffer[:size], self.buffer[size:]
            if opcode == 8:
                payload = frame[size - self._payload_len(frame) :]
                return int(struct.unpack("!H", payload[:2])[0])

    def _payload_len(self, data: bytes) -> int:
        import struct

        length = data[1] & 0x7F
        if length == 126:
            return int(struct.unpack("!H", data[2:4])[0])
        if length == 127:
            return int(struct.unpack("!Q", data[2:10])[0])
        return length

    def _frame_size(self) -> int:
        data = self.buffer
        if len(data) < 2:
            return 2
        length = data[1] & 0x7F
        extra = 2 if length == 126 else 8 if length == 127 else 0
        if len(data) < 2 + extra:
            return 2 + extra
        return 2 + extra + self._payload_len(data)

    def close(self) -> None:
        self.sock.close()
