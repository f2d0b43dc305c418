"""Tells that may fail and are not worth failing the caller: logged and counted, never silent.

The hub's notices to rooms (`Changed`, `Deleted`, `Tick`) and to sessions (`TeamLeft`),
and a session's `Exit` and typing notices, go to actors that may be stopping (nothing
more to do) or overloaded (the notice is lost). The caller goes on either way, but
operators see each loss in the log, with the actor's name, and in
`roomcast_actor_tells_failed_total`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from actors.actor import Actor
from actors.errors import ActorError

logger = logging.getLogger(__name__)

#: Counts one failed tell, by (actor kind, message type, error type), e.g.
#: ("room", "Tick", "MailboxFull"). The server passes in a Prometheus counter's `inc`.
CountFailedTell = Callable[[str, str, str], None]


class FailedTells:
    """Tells an actor a message; a refusal is logged and counted instead of raised.

    Args:
        count: called once per failed tell; None counts nothing (tests, tools).
    """

    def __init__(self, count: CountFailedTell | None = None) -> None:
        self._count = count

    def tell(self, actor: Actor[Any], message: object, *, sender: str) -> bool:
        """Tell `actor` the `message`; return whether it was queued.

        `sender` names who tried, for the log line.
        """
        try:
            actor.tell(message)
        except ActorError as exc:
            self.failed(actor, type(message).__name__, exc, sender=sender)
            return False
        return True

    def failed(self, actor: Actor[Any], kind: str, error: ActorError, *, sender: str) -> None:
        """Log and count a `kind` message that `actor` refused or never answered (an ask
        that timed out, or met a stop or a crash); `sender` names who tried."""
        logger.warning("%s: could not tell %s %s: %s", sender, actor.name, kind, error)
        if self._count is not None:
            self._count(actor.name.split(":")[0], kind, type(error).__name__)
