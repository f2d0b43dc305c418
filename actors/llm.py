"""What a Generation needs from a language model: a prompt in, a stream of chunks out.

The interface lives with the actors (no aiohttp, no google-genai here) so a Generation
depends only on this; `server/llm/` holds the implementations (Gemini, offline, and the
resilience wrapper around either).

The stream contract every implementation keeps:

- `stream(prompt)` is an async generator of `Chunk`s. Exactly one chunk carries
  `finish` (`stop`, `length` or `safety`) and it is the last; its `text` may be empty.
  Other chunks carry non-empty `text`.
- Failing, it raises an `LLMError` whose `code` is an `ai.error` code. Text already
  yielded stays valid: the caller decides whether to keep it.
- Closing the generator (`aclose()`) or cancelling the task iterating it stops the
  upstream request before returning; nothing keeps streaming in the background.
  `asyncio.CancelledError` is never swallowed.

An answer stopped by the provider's safety filters after it began ends normally with
`finish="safety"`; `PromptBlocked` is for a prompt refused before any answer.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

Role = Literal["user", "model"]
Finish = Literal["stop", "length", "safety"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of the conversation: the room's users speak as `user`, the assistant as `model`.

    A Generation puts the speaker's name in front of a user turn's text itself
    ("Ada: hi"); the providers pass `text` on unchanged.
    """

    role: Role
    text: str


@dataclass(frozen=True, slots=True)
class Prompt:
    """Everything one answer is generated from; `turns` run oldest first."""

    system: str | None
    turns: tuple[Turn, ...]
    max_output_tokens: int = 1024
    temperature: float | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens the provider counted for one prompt (all its upstream requests); None if unknown."""

    input_tokens: int | None
    output_tokens: int | None


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of the answer; the last one has `finish` and, when known, `usage`."""

    text: str
    finish: Finish | None = None
    usage: Usage | None = None


class LLMError(Exception):
    """A generation failed; `code` is the `ai.error` code, `message` is safe to show clients.

    Deliberately not a `RoomcastError`: these codes are `ai.error` codes (`blocked` and
    `stalled` are not REST codes), and a Generation turns them into an `ai.error` event,
    never into an `error` reply.

    `retryable` says whether sending the same prompt again may succeed (a provider
    outage may pass; a rejected request will not).
    """

    code: ClassVar[str] = "unavailable"
    default_message: ClassVar[str] = "model provider is unavailable"

    def __init__(self, message: str | None = None, *, retryable: bool = True) -> None:
        self.message = message or self.default_message
        self.retryable = retryable
        super().__init__(self.message)


class ProviderUnavailable(LLMError):
    """The provider is down or unusable: 5xx, a refused request, network, breaker open."""

    code, default_message = "unavailable", "model provider is unavailable"


class ProviderRateLimited(LLMError):
    """The provider answered 429: our quota with it is exhausted for now."""

    code, default_message = "rate_limited", "model provider is rate limiting requests"


class PromptBlocked(LLMError):
    """The provider refused the prompt itself (safety or policy); resending will not help."""

    code, default_message = "blocked", "the prompt was blocked by the model's safety filters"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, retryable=False)


class StreamStalled(LLMError):
    """No chunk arrived within the first-token or the idle timeout."""

    code, default_message = "stalled", "the model stopped responding"


class LLM(Protocol):
    """A streaming language model. See the module docstring for the stream contract."""

    @property
    def model(self) -> str:
        """The model's name as `ai.start` shows it."""
        ...

    def stream(self, prompt: Prompt) -> AsyncGenerator[Chunk, None]:
        """Generate an answer to `prompt`, chunk by chunk. Raises LLMError."""
        ...

    async def warm_up(self) -> None:
        """Get ready for the first request (at start-up), so no prompt pays for that."""
        ...

    async def close(self) -> None:
        """Release connections; the object is not used afterwards."""
        ...
