"""The actor runtime: actors with bounded mailboxes, supervisors, keyed registries."""

from actors.actor import Actor, ActorSnapshot, ActorState, Parent, reject, resolve
from actors.errors import (
    ActorCrashed,
    ActorDead,
    ActorError,
    ActorStopped,
    AskTimeout,
    MailboxFull,
    RestartLimitExceeded,
)
from actors.registry import Registry
from actors.supervisor import RestartPolicy, Supervisor

__all__ = [
    "Actor",
    "ActorCrashed",
    "ActorDead",
    "ActorError",
    "ActorSnapshot",
    "ActorState",
    "ActorStopped",
    "AskTimeout",
    "MailboxFull",
    "Parent",
    "Registry",
    "RestartLimitExceeded",
    "RestartPolicy",
    "Supervisor",
    "reject",
    "resolve",
]
