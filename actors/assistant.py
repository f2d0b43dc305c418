"""The assistant's side of a room: who gets an answer, the context it sees, one generation.

A `Run` is one generation: in a task of its own, it publishes `ai.start`, streams the
answer as an `ai.delta` per chunk, then stores the whole text as an assistant message and
publishes it with `ai.end` — or publishes `ai.error`. Whatever happens, an `ai.start` is
always followed by one of the two. Cancelling stops the upstream stream at once; the
partial text is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from actors.events import EventKind
from actors.llm import LLM, LLMError, Prompt, Turn, Usage
from storage.messages import Author, Generation, NewMessage, StoredMessage
from storage.types import unstorable

logger = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = (
    "You are the assistant in a team chat room. Several people talk here; each of their "
    "messages starts with the speaker's name and a colon. Answer the newest message "
    "helpfully and briefly, in the language it was written in."
)
ASSISTANT = Author.assistant("Assistant")


class Quotas(Protocol):
    """The daily AI allowance: counted once per prompt, before anything goes upstream."""

    async def try_consume(self, user_id: str) -> bool:
        """Count one prompt; False past the allowance. Raises Unavailable: not counted."""
        ...

    def expect(self, user_id: str) -> None:
        """The user may prompt soon: get ready (in the background) to count it at once."""
        ...


class AssistantObserver(Protocol):
    """What the assistant tells the operator's metrics (the server wires Prometheus in).

    Times are seconds on the event loop's clock.
    """

    def queued(self, depth: int) -> None:
        """A prompt joined its room's queue, which now holds `depth` prompts."""

    def first_token(self, model: str, *, since_commit: float, since_request: float) -> None:
        """A generation's first text: after its prompt was committed, and its request sent."""

    def finished(
        self, model: str, finish: str, usage: Usage | None, tokens_per_second: float | None
    ) -> None:
        """A generation ended with an answer (`finish` as stored: stop, length, cancelled...)."""

    def failed(self, model: str, code: str) -> None:
        """A generation ended with `ai.error` `code`."""


class NoObserver:
    """Tells nobody: for tests and instances without metrics."""

    def queued(self, depth: int) -> None:
        pass

    def first_token(self, model: str, *, since_commit: float, since_request: float) -> None:
        pass

    def finished(
        self, model: str, finish: str, usage: Usage | None, tokens_per_second: float | None
    ) -> None:
        pass

    def failed(self, model: str, code: str) -> None:
        pass


@dataclass(frozen=True, slots=True)
class AssistantConfig:
    context_tokens: int = 8000
    context_messages: int = 200
    max_output_tokens: int = 1024
    queue_size: int = 8


def wants_answer(mode: str, ai_flag: bool | None) -> bool:
    """docs/protocol.md: `auto` answers every user message, `mention` those sent with `ai`."""
    return mode == "auto" or (mode == "mention" and bool(ai_flag))


def estimate_tokens(text: str) -> int:
    return len(text) // 4 + 1


def build_prompt(
    system_prompt: str | None, history: Sequence[StoredMessage], config: AssistantConfig
) -> Prompt:
    """The newest messages that fit the budget, oldest first, users named, answers as `model`."""
    turns = [
        Turn("model", message.body)
        if message.author.kind == "assistant"
        else Turn("user", f"{message.author.name}: {message.body}")
        for message in history
    ]
    return prompt_of(system_prompt, turns, config)


def prompt_of(system_prompt: str | None, turns: Sequence[Turn], config: AssistantConfig) -> Prompt:
    """The newest of `turns` (oldest first) that fit the budget, same speakers merged."""
    budget = config.context_tokens
    picked: list[Turn] = []
    for turn in reversed(turns):
        budget -= estimate_tokens(turn.text)
        if budget < 0 and picked:
            break
        picked.append(turn)
    picked.reverse()
    while picked and picked[0].role == "model":
        picked.pop(0)  # a conversation opens with a user turn
    merged: list[Turn] = []
    for turn in picked:
        if merged and merged[-1].role == turn.role:
            merged[-1] = Turn(turn.role, f"{merged[-1].text}\n{turn.text}")
        else:
            merged.append(turn)
    system = system_prompt or DEFAULT_SYSTEM_PROMPT
    return Prompt(system, tuple(merged), max_output_tokens=config.max_output_tokens)


@dataclass(eq=False, slots=True)
class Job:
    """A prompt waiting for (or getting) its answer."""

    room_id: str
    prompt_seq: int
    prompter_id: str
    gen_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    committed_at: float | None = None  # loop time its prompt was committed and queued


Publish = Callable[[dict[str, Any]], Awaitable[None]]
Store = Callable[[NewMessage], Awaitable[StoredMessage]]
LoadContext = Callable[[Job], Awaitable[Prompt]]


class StorableText:
    """A model's text made storable as it streams, one chunk at a time.

    NUL is dropped, a surrogate pair split over two chunks becomes its character, and any
    other surrogate half is dropped: PostgreSQL refuses NUL and no driver encodes a lone
    surrogate, so one such character would otherwise cost the whole answer.
    """

    def __init__(self) -> None:
        self._high = ""  # a leading surrogate half that ended the last chunk

    def feed(self, text: str) -> str:
        text, self._high = self._high + text, ""
        if text and "\ud800" <= text[-1] <= "\udbff":
            text, self._high = text[:-1], text[-1]
        if unstorable(text) is None:
            return text
        # A UTF-16 round trip joins each pair into its character and drops lone halves.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "ignore")
        return text.replace("\x00", "")


class Run:
    """One generation: stream, announce, store. `cancel()` stops it within one chunk."""

    def __init__(
        self,
        job: Job,
        *,
        llm: LLM,
        load: LoadContext,
        store: Store,
        publish: Publish,
        observer: AssistantObserver | None = None,
    ) -> None:
        self.job = job
        self._observer = observer or NoObserver()
        self._first_at: float | None = None  # loop time of the first text
        self._llm = llm
        self._load = load
        self._store = store
        self._publish = publish
        self._stream: asyncio.Task[str] | None = None
        self._parts: list[str] = []
        self._finish = "stop"
        self._usage: Usage | None = None
        self._task: asyncio.Task[None] | None = None
        self.cancelled = False

    def start(self) -> asyncio.Task[None]:
        """Run in a task of its own, which ends after `ai.end` or `ai.error`."""
        job = self.job
        self._task = asyncio.create_task(self.run(), name=f"room:{job.room_id} gen {job.gen_id}")
        return self._task

    def cancel(self) -> None:
        """Stop streaming (a user's cancel): the text so far is stored, finish `cancelled`."""
        self.cancelled = True
        if self._stream is not None:
            self._stream.cancel()

    def abort(self) -> None:
        """Stop the task at once (its room stops): it ends with `ai.error` `interrupted`."""
        if self._task is not None:
            self._task.cancel()

    def _event(self, kind: EventKind, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "room": self.job.room_id, "gen": self.job.gen_id, **fields}

    async def run(self) -> None:
        """Run to `ai.end` or `ai.error`; never leaves an `ai.start` without one of them."""
        job = self.job
        await self._publish(
            self._event(EventKind.AI_START, reply_to=job.prompt_seq, model=self._llm.model)
        )
        try:
            prompt = await self._load(job)
            self._stream = asyncio.create_task(self._consume(prompt))
            await self._wait_stream()
            await self._finish_stored()
        except LLMError as exc:
            self._observer.failed(self._llm.model, exc.code)
            await self._publish(self._event(EventKind.AI_ERROR, code=exc.code, message=str(exc)))
        except asyncio.CancelledError:
            self._observer.failed(self._llm.model, "interrupted")
            await self._publish(
                self._event(EventKind.AI_ERROR, code="interrupted", message="stopped")
            )
            raise
        except Exception:  # noqa: BLE001 - an `ai.start` is always followed by its end
            logger.exception("generation %s in room %s failed", job.gen_id, job.room_id)
            self._observer.failed(self._llm.model, "internal")
            await self._publish(
                self._event(EventKind.AI_ERROR, code="internal", message="internal")
            )

    async def _wait_stream(self) -> None:
        assert self._stream is not None  # noqa: S101 - set just before
        try:
            await self._stream
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self.cancelled or (task is not None and task.cancelling()):
                raise  # we are being cancelled ourselves, not just the stream
        if self.cancelled:
            self._finish = "cancelled"

    async def _consume(self, prompt: Prompt) -> str:
        index = 0
        storable = StorableText()
        loop = asyncio.get_running_loop()
        requested_at = loop.time()
        async with contextlib.aclosing(self._llm.stream(prompt)) as stream:
            async for chunk in stream:
                text = storable.feed(chunk.text)
                if text and self._first_at is None:
                    self._first_text(requested_at)
                if text:
                    self._parts.append(text)
                    await self._publish(self._event(EventKind.AI_DELTA, i=index, text=text))
                    index += 1
                if chunk.finish:
                    self._finish = chunk.finish
                if chunk.usage is not None:
                    self._usage = chunk.usage
                if self.cancelled:
                    break
        return "".join(self._parts)

    def _first_text(self, requested_at: float) -> None:
        self._first_at = now = asyncio.get_running_loop().time()
        committed_at = self.job.committed_at if self.job.committed_at is not None else now
        self._observer.first_token(
            self._llm.model, since_commit=now - committed_at, since_request=now - requested_at
        )

    def _tokens_per_second(self) -> float | None:
        """Output tokens (the provider's count, else chunks) per second after the first."""
        if self._first_at is None:
            return None
        elapsed = asyncio.get_running_loop().time() - self._first_at
        output = self._usage.output_tokens if self._usage is not None else None
        count = output if output is not None else len(self._parts)
        return count / elapsed if elapsed > 0 and count > 1 else None

    async def _finish_stored(self) -> None:
        self._observer.finished(
            self._llm.model, self._finish, self._usage, self._tokens_per_second()
        )
        usage = self._usage or Usage(None, None)
        generation = Generation(
            self.job.gen_id,
            self._llm.model,
            self._finish,
            usage.input_tokens,
            usage.output_tokens,
        )
        message = NewMessage(
            self.job.room_id,
            ASSISTANT,
            "".join(self._parts),
            reply_to=self.job.prompt_seq,
            generation=generation,
        )
        stored = await self._store(message)
        await self._publish(stored.to_event())
        usage_json = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
        await self._publish(
            self._event(EventKind.AI_END, seq=stored.seq, finish=self._finish, usage=usage_json)
        )
