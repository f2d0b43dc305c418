"""Websocket close codes (docs/protocol.md, Close codes), named like aiohttp's `WSCloseCode`.

The 4xxx codes are ours, in the range RFC 6455 leaves to applications; each echoes the
HTTP status of the same meaning.
"""

from __future__ import annotations

import enum


class CloseCode(enum.IntEnum):
    """The close codes the server sends (aiohttp sends 1009 for an oversized frame)."""

    UNSUPPORTED_DATA = 1003  # a binary frame
    INTERNAL_ERROR = 1011  # the server cannot go on with this connection
    PROTOCOL_VIOLATION = 4400  # a frame that is not a JSON object with a type
    NOT_AUTHENTICATED = 4401
    AUTH_TIMEOUT = 4408  # no auth frame in time
    TOO_MANY_FRAMES = 4429
    SHUTTING_DOWN = 4503
    SLOW_CONSUMER = 4509
