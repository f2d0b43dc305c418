"""Why an actor ends a connection. The actor states the reason; the websocket layer
(server/ws.py) picks the close code for it, so actors know nothing of the wire."""

from __future__ import annotations

import enum
from collections.abc import Callable


class CloseReason(enum.StrEnum):
    """A reason to close a connection; its value is the close frame's reason text."""

    TOKENS_REVOKED = "tokens revoked"  # logout-all, a password change or reset
    SIGN_IN_REVOKED = "sign-in revoked"  # logout, or a spent refresh token presented again
    # Reason texts, not secrets (S105). Expired: and not refreshed within the grace period;
    # invalid: a re-auth with a token that does not verify.
    TOKEN_EXPIRED = "token expired"  # noqa: S105
    INVALID_TOKEN = "invalid token"  # noqa: S105
    ROOM_ACCESS_CHANGED = "room access changed"  # too busy to take the change in
    SLOW_CONSUMER = "slow consumer"  # the outbound queue overflowed
    SHUTDOWN = "server shutting down"


#: How an actor asks the websocket layer to close its connection.
Closer = Callable[[CloseReason], None]
