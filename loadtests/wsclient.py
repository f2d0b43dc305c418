"""A lean websocket client for load generation: one asyncio Protocol per connection.

aiohttp's client costs several microseconds and a few objects per received frame; at
100,000+ deliveries a second on one core that alone would make the load client the
bottleneck. This client parses server frames straight out of the bytes `data_received`
hands it and calls `on_text(payload, now_ns)` for each text frame, with one clock read
per chunk. It speaks only what the benchmark needs: the upgrade with a bearer token,
masked text frames out, text/ping/close frames in (servers never fragment ours).
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Callable
from typing import Any, cast

import orjson

TextHandler = Callable[[bytes, int], None]

_OP_TEXT = 0x1
_OP_CLOSE = 0x8
_OP_PING = 0x9
_HEAD_END = b"\r\n\r\n"


class HandshakeError(Exception):
    """The server refused the websocket upgrade (status line attached)."""


def encode_frame(payload: bytes, opcode: int = _OP_TEXT) -> bytes:
    """A masked client frame (RFC 6455 5.3) holding `payload`."""
    size = len(payload)
    mask = os.urandom(4)
    if size < 126:
        header = bytes((0x80 | opcode, 0x80 | size))
    elif size < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    if not size:
        return header + mask
    key = (mask * (size // 4 + 1))[:size]
    masked = int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")
    return header + mask + masked.to_bytes(size, "little")


def upgrade_request(host: str, port: int, token: str | None, path: str = "/ws") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"{auth}\r\n"
    ).encode()


class WsClient(asyncio.Protocol):
    """One websocket connection; frames go to `on_text`, which callers may swap at will.

    Until a handler is installed, text frames are queued and read with `next_frame`.
    """

    def __init__(self, host: str, port: int, token: str | None) -> None:
        self._request = upgrade_request(host, port, token)
        self._buffer = b""
        self._upgraded = False
        self._frames: asyncio.Queue[bytes] = asyncio.Queue()
        self.on_text: TextHandler = self._queue_frame
        self.on_lost: Callable[[WsClient], None] = lambda _client: None
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.lost = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the upgrade"))
        self._frames.put_nowait(b"")  # wakes a reader waiting in next_frame
        self.on_lost(self)

    def data_received(self, data: bytes) -> None:
        if self._buffer:
            data = self._buffer + data
            self._buffer = b""
        if not self._upgraded:
            data = self._take_handshake(data)
            if not data:
                return
        self._parse(data, time.monotonic_ns())

    # Frames in.

    def _take_handshake(self, data: bytes) -> bytes:
        end = data.find(_HEAD_END)
        if end < 0:
            self._buffer = data
            return b""
        head = data[:end]
        status = head.split(b"\r\n", 1)[0]
        if not status.startswith(b"HTTP/1.1 101"):
            self.opened.set_exception(HandshakeError(status.decode(errors="replace")))
            assert self.transport is not None
            self.transport.close()
            return b""
        self._upgraded = True
        self.opened.set_result(None)
        return data[end + len(_HEAD_END) :]

    def _parse(self, data: bytes, now: int) -> None:
        pos, size, handler = 0, len(data), self.on_text
        while size - pos >= 2:
            length = data[pos + 1] & 0x7F  # server frames are never masked
            if length < 126:
                start = pos + 2
            elif length == 126:
                if size - pos < 4:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 4
            else:
                if size - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > size:
                break
            opcode = data[pos] & 0x0F
            if opcode == _OP_TEXT:
                handler(data[start:end], now)
            else:
                self._control(opcode, data[start:end])
            pos = end
        if pos < size:
            self._buffer = data[pos:]

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == _OP_PING:
            self.send(payload, 0xA)
        elif opcode == _OP_CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.close()

    def _queue_frame(self, payload: bytes, _now: int) -> None:
        self._frames.put_nowait(payload)

    async def next_frame(self, kind: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
        """The next queued frame (of type `kind`, skipping others), decoded.

        Raises:
            ConnectionError: the connection ended first.
            TimeoutError: nothing fitting arrived within `timeout`.
        """
        async with asyncio.timeout(timeout):
            while True:
                payload = await self._frames.get()
                if not payload:
                    raise ConnectionError(f"connection closed (code {self.close_code})")
                frame: dict[str, Any] = orjson.loads(payload)
                if kind is None or frame.get("type") == kind:
                    return frame
                if frame.get("type") == "error":
                    raise ConnectionError(f"server error while waiting for {kind}: {frame}")

    # Frames out.

    def send(self, payload: bytes, opcode: int = _OP_TEXT) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(payload, opcode))

    def send_json(self, frame: dict[str, Any]) -> None:
        self.send(orjson.dumps(frame))

    def close(self, code: int = 1000) -> None:
        """Send a close frame and drop the connection (we do not wait for the echo)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(code.to_bytes(2, "big"), _OP_CLOSE))
            self.transport.close()


async def open_ws(host: str, port: int, token: str | None, timeout: float = 15.0) -> WsClient:
    """Connect, upgrade and return the client (after the 101, before any frame).

    Raises:
        HandshakeError: the upgrade was refused.
        OSError, TimeoutError: the connection could not be made.
    """
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        _transport, client = await loop.create_connection(
            lambda: WsClient(host, port, token), host, port
        )
        await client.opened
    return client
