"""Exceptions raised by the client."""

from __future__ import annotations


class RoomcastError(Exception):
    """Base class of every error this package raises."""


class RequestError(RoomcastError):
    """The server answered a request with an `error` frame.

    Attributes:
        code: the protocol's error code (`forbidden`, `not_found`, `invalid`, ...).
        message: the server's explanation, for people.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class SendError(RequestError):
    """A `send` was refused and nothing was stored.

    Resending with the same `client_id` is always safe (`client.send(..., client_id=...)`).
    """

    def __init__(self, code: str, message: str, *, room: str, client_id: str) -> None:
        super().__init__(code, message)
        self.room = room
        self.client_id = client_id


class JoinError(RequestError):
    """A `join` was refused (`not_found`: no such room, or not yours)."""


class RoomLeftError(RoomcastError):
    """The room was left (or taken away) before this request could be completed."""

    def __init__(self, room: str, reason: str | None) -> None:
        super().__init__(f"room {room} left ({reason or 'by request'})")
        self.room = room
        self.reason = reason


class ConnectionClosedError(RoomcastError):
    """The client stopped for good; `code` is the close code that ended it, if any."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ProtocolViolation(ConnectionClosedError):
    """The server closed with 4400, 1003, 1007 or 1009: a client bug; not reconnected."""


class AuthenticationError(ConnectionClosedError):
    """The server refused the token (4401, HTTP 401) and no fresh one could be had."""


class TokenError(RoomcastError):
    """A token provider could not produce a token (for example, the refresh got 401)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
