"""The error root every layer raises: each class carries its protocol code and HTTP status.

The codes are listed in docs/protocol.md (Errors). The root sits beside the packages
rather than in one of them because storage, actors and server all raise these, and
storage may import neither of the other two.
"""

from __future__ import annotations

from typing import Any, ClassVar


class RoomcastError(Exception):
    """An error a client may see: a stable machine code, an HTTP status, a safe message."""

    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "internal error"

    def __init__(
        self, message: str | None = None, *, details: dict[str, Any] | None = None
    ) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


class Invalid(RoomcastError):
    code, status, default_message = "invalid", 400, "invalid request"


class Unauthorized(RoomcastError):
    code, status, default_message = "unauthorized", 401, "authentication required"


class TotpRequired(RoomcastError):
    code, status, default_message = "totp_required", 401, "a TOTP or backup code is required"


class QuotaExceeded(RoomcastError):
    code, status, default_message = "quota_exceeded", 402, "daily AI allowance used up"


class Forbidden(RoomcastError):
    code, status, default_message = "forbidden", 403, "not allowed"


class NotFound(RoomcastError):
    code, status, default_message = "not_found", 404, "not found"


class MethodNotAllowed(RoomcastError):
    code, status, default_message = "method_not_allowed", 405, "method not allowed"


class Conflict(RoomcastError):
    code, status, default_message = "conflict", 409, "conflict"


class TooLarge(RoomcastError):
    code, status, default_message = "too_large", 413, "body too large"


class Locked(RoomcastError):
    code, status, default_message = "locked", 423, "account temporarily locked"


class RateLimited(RoomcastError):
    code, status, default_message = "rate_limited", 429, "too many requests"

    def __init__(self, message: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class Unavailable(RoomcastError):
    code, status, default_message = "unavailable", 503, "service unavailable"


class Internal(RoomcastError):
    code, status, default_message = "internal", 500, "internal error"
