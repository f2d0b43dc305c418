"""What a room remembers for its assistant: the newest messages, as the model's turns.

The room committed (or received from the bus) every recent message itself, so a prompt's
context is built from this memory and reads nothing from the database. The memory is
loaded once from the database (when the room starts, or at its first prompt), then fed
every message the room commits or orders, in any order: it knows which `seq`s it holds
without a hole. A prompt whose context it cannot vouch for (a message missed while the
bus was down, one still on its way from another instance) is built from the database
instead, which also reloads the memory.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from actors.assistant import estimate_tokens
from actors.llm import Turn
from storage.messages import StoredMessage

#: Messages that arrived ahead of a hole, kept until it is filled (or the next reload).
AHEAD_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class Remembered:
    """One message as the model sees it: users named, the assistant's answers as `model`."""

    seq: int
    turn: Turn
    tokens: int

    @classmethod
    def of(cls, message: StoredMessage) -> Remembered:
        return cls.made(message.seq, message.author.kind, message.author.name, message.body)

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Remembered:
        """From a `message` event (docs/protocol.md), as the bus brings it."""
        author = event["author"]
        return cls.made(event["seq"], author["kind"], author["name"], event["body"])

    @classmethod
    def made(cls, seq: int, kind: str, name: str, body: str) -> Remembered:
        turn = Turn("model", body) if kind == "assistant" else Turn("user", f"{name}: {body}")
        return cls(seq, turn, estimate_tokens(turn.text))


class ContextMemory:
    """The newest messages of one room, complete from its oldest up to `complete_upto`.

    Args:
        max_tokens, max_messages: what is kept: twice the context budget, so a prompt
            queued behind a few newer messages still finds its whole context.
    """

    def __init__(self, *, max_tokens: int, max_messages: int) -> None:
        self._max_tokens = max_tokens
        self._max_messages = max_messages
        self._kept: list[Remembered] = []  # ascending seq, without holes
        self._tokens = 0
        self._ahead: dict[int, Remembered] = {}  # arrived past a hole
        self.complete_upto: int | None = None  # None until loaded

    @property
    def loaded(self) -> bool:
        return self.complete_upto is not None

    def load(self, history: Iterable[StoredMessage], upto: int) -> None:
        """Start over from the database: `history` holds the newest messages up to `upto`."""
        for entry in self._kept:  # what came after `upto` is still good
            if entry.seq > upto and len(self._ahead) < AHEAD_LIMIT:
                self._ahead[entry.seq] = entry
        self._kept = [Remembered.of(message) for message in history if message.seq <= upto]
        self._tokens = sum(entry.tokens for entry in self._kept)
        self.complete_upto = upto
        self._ahead = {seq: entry for seq, entry in self._ahead.items() if seq > upto}
        self._absorb()
        self._trim()

    def add(self, entry: Remembered) -> None:
        """Remember a committed message; a duplicate or an old one changes nothing."""
        if self.complete_upto is None:
            if len(self._ahead) < AHEAD_LIMIT:
                self._ahead[entry.seq] = entry  # kept for the load that comes
            return
        if entry.seq <= self.complete_upto:
            return
        if entry.seq > self.complete_upto + 1:
            if len(self._ahead) < AHEAD_LIMIT:
                self._ahead[entry.seq] = entry
            return
        self._append(entry)
        self._absorb()
        self._trim()

    def context(self, upto: int) -> list[Turn] | None:
        """The remembered turns up to `upto`, oldest first; None when some may be missing."""
        if self.complete_upto is None or self.complete_upto < upto:
            return None
        end = bisect.bisect_right(self._kept, upto, key=lambda entry: entry.seq)
        if self._kept and end == 0 and self._kept[0].seq > upto:
            return None  # trimmed past it: the database has it
        return [entry.turn for entry in self._kept[:end]]

    def _append(self, entry: Remembered) -> None:
        self._kept.append(entry)
        self._tokens += entry.tokens
        self.complete_upto = entry.seq

    def _absorb(self) -> None:
        assert self.complete_upto is not None  # noqa: S101 - only called once loaded
        while (entry := self._ahead.pop(self.complete_upto + 1, None)) is not None:
            self._append(entry)
        for seq in [seq for seq in self._ahead if seq <= self.complete_upto]:
            del self._ahead[seq]

    def _trim(self) -> None:
        drop = 0
        tokens = self._tokens
        while len(self._kept) - drop > 1 and (
            len(self._kept) - drop > self._max_messages or tokens > self._max_tokens
        ):
            tokens -= self._kept[drop].tokens
            drop += 1
        if drop:
            del self._kept[:drop]
            self._tokens = tokens
