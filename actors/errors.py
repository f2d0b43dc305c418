"""Errors of the actor runtime: each names the actor it is about.

They are `Unavailable` (503, code `unavailable`) to a client because, seen from outside,
an actor that cannot take a message is a part of the server that is not available right
now. A sender that knows better (a session flooding its own room) maps `MailboxFull` to
`RateLimited` itself.
"""

from __future__ import annotations

from errors import Unavailable


class ActorError(Unavailable):
    """Root of the runtime's errors; `actor` is the name of the actor concerned."""

    def __init__(self, actor: str, message: str) -> None:
        self.actor = actor
        super().__init__(f"{actor}: {message}")


class MailboxFull(ActorError):
    """`tell` or `ask` found the mailbox full; the message was not enqueued."""

    def __init__(self, actor: str) -> None:
        super().__init__(actor, "mailbox is full")


class ActorStopped(ActorError):
    """The actor is stopping or stopped and takes no more messages."""

    def __init__(self, actor: str, message: str = "actor is stopped") -> None:
        super().__init__(actor, message)


class ActorDead(ActorStopped):
    """The actor crashed and will not be restarted; its `__cause__` is the crash."""

    def __init__(self, actor: str) -> None:
        super().__init__(actor, "actor is dead after a crash")


class ActorCrashed(ActorError):
    """The actor crashed while handling the message this ask was waiting on."""

    def __init__(self, actor: str) -> None:
        super().__init__(actor, "actor crashed while handling the message")


class AskTimeout(ActorError):
    """No reply came within the ask's timeout; the reply future was cancelled."""

    def __init__(self, actor: str, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(actor, f"no reply within {timeout:g}s")


class RestartLimitExceeded(ActorError):
    """A child crashed more often than its supervisor's policy allows, so it was stopped.

    This is what a supervisor escalates; `__cause__` is the child's last crash.
    """

    def __init__(self, supervisor: str, child: str, crashes: int, within: float) -> None:
        self.supervisor = supervisor
        self.child = child
        self.crashes = crashes
        super().__init__(child, f"crashed {crashes} times within {within:g}s, gave up")
