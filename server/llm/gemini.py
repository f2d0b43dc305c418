"""`GeminiLLM`: the `LLM` interface on google-genai's async streaming API.

The SDK is asked for `streamGenerateContent?alt=sse` and its chunks are turned into
`Chunk`s; its errors into `LLMError`s. Two SDK behaviours shape this module:

- Closing the SDK's stream generator (`aclose()`) does not close the HTTP response: its
  inner generators are only finalised later, and meanwhile the server goes on streaming.
  Cancelling a task that is awaiting the next chunk does close it at once. So a small
  pump task reads the SDK stream one chunk ahead of the consumer, and closing our stream
  cancels the pump: the upstream request stops within one chunk.
- Automatic continuation (on by default since google-genai 3.x) is kept on: an answer
  that hits the per-request limit with `CONTINUATION` goes on in a follow-up request the
  SDK makes itself, and arrives here as one stream whose usage is summed over the hops.
  Quota is counted per prompt by the caller, so the extra requests cost nothing there.

Retries are left to `ResilientLLM`: the SDK gets `attempts=1`, which also stops it from
retrying a refused connection by itself after a random 1-10 s sleep.

Building a request is CPU the event loop spends before the request leaves, and 50
prompts at once pay it one after another. The SDK converts a request field by field
through its `get_value_by_path`, slow on its own typed parts (see `_get_value_by_path`):
the converter module is pointed at a faster equivalent, the one private SDK name this
module relies on (tests/server/llm/test_gemini_sdk_internals.py fails if it changes).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import pydantic
from google import genai
from google.genai import _common as genai_common
from google.genai import errors, types
from google.genai import models as genai_models

from actors.llm import (
    Chunk,
    Finish,
    LLMError,
    Prompt,
    PromptBlocked,
    ProviderRateLimited,
    ProviderUnavailable,
    Turn,
    Usage,
)

# What the pump hands the consumer: a chunk, the error that ended the stream, or None at
# the end of the stream.
_Item = types.GenerateContentResponse | Exception | None

# The request's total timeout surfaces as TimeoutError; unparseable chunks as
# UnknownApiResponseError.
_NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, OSError, errors.UnknownApiResponseError)

_SAFETY = frozenset(
    {
        types.FinishReason.SAFETY,
        types.FinishReason.RECITATION,
        types.FinishReason.PROHIBITED_CONTENT,
        types.FinishReason.BLOCKLIST,
        types.FinishReason.SPII,
        types.FinishReason.IMAGE_SAFETY,
        types.FinishReason.IMAGE_PROHIBITED_CONTENT,
        types.FinishReason.IMAGE_RECITATION,
    }
)
# CONTINUATION reaches us only when the SDK could not continue (no token): the answer
# stopped at a per-request limit, which is what `length` means.
_LENGTH = frozenset({types.FinishReason.MAX_TOKENS, types.FinishReason.CONTINUATION})

#: The SDK's types one streamed request builds, request and response side.
_REQUEST_TYPES = (
    types._GenerateContentParameters,  # private, but the SDK validates every request with it
    types.Part,
    types.Content,
    types.UserContent,
    types.HttpResponse,
    types.GenerateContentResponse,
    types.Candidate,
    types.GenerateContentResponseUsageMetadata,
)

#: Request configs kept (one per distinct system prompt and limits); the oldest go first.
CONFIGS_KEPT = 256


class GeminiLLM:
    """Gemini through google-genai; `base_url` points the real SDK at another server (tests).

    Args:
        api_key: sent as `x-goog-api-key`.
        model: the model id, e.g. "gemini-2.5-flash"; also the name `ai.start` shows.
        base_url: overrides the SDK's endpoint (and the GOOGLE_GEMINI_BASE_URL variable).
        request_timeout_s: budget for one whole upstream request, streaming included. A
            backstop only: the first-token and idle timeouts are `ResilientLLM`'s.
        http_session: an aiohttp session to send requests with; the caller closes it.
    """

    def __init__(
        self,
        api_key: str,
        model: str,
        *,
        base_url: str | None = None,
        request_timeout_s: float,
        http_session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._api_key = api_key
        self._model = model
        self._base_url = base_url
        self._timeout_ms = round(request_timeout_s * 1000)
        self._session = http_session
        self._owns_session = http_session is None
        self._client: genai.Client | None = None
        # A room's config changes only with its system prompt: built once per prompt text.
        self._configs: dict[tuple[str | None, int, float | None], types.GenerateContentConfig] = {}

    @property
    def model(self) -> str:
        return self._model

    async def stream(self, prompt: Prompt) -> AsyncGenerator[Chunk, None]:
        """Stream the answer; see `actors.llm` for the contract. Raises LLMError."""
        queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=1)
        pump = asyncio.create_task(self._pump(prompt, queue), name=f"gemini:{self._model}")
        usage: Usage | None = None
        try:
            while True:
                item = await queue.get()
                if item is None:
                    # Gemini always ends an answer with a finishReason; without one the
                    # text is incomplete and must not pass for a whole answer.
                    raise ProviderUnavailable("the model's answer was cut off")
                if isinstance(item, Exception):
                    raise _translate(item)
                text, finish, chunk_usage = _read(item)
                usage = chunk_usage or usage
                if finish is not None:
                    yield Chunk(text, finish, usage)
                    return
                if text:
                    yield Chunk(text)
        finally:
            pump.cancel()
            await asyncio.wait([pump])

    async def warm_up(self) -> None:
        """Make the SDK client and build one request's typed parts, sending nothing.

        The SDK imports and compiles much of itself on first use: about 150 ms of CPU
        that would otherwise fall on the first prompts after a start (measured with 50
        prompts at once: first chunks at 300 ms cold, 164 ms after this).
        """
        sample = Prompt(system="warm-up", turns=(Turn("user", "warm-up"),), temperature=0.5)
        self._sdk()
        _contents(sample)
        self._config(sample)
        # The SDK's types are built on their first use (pydantic's deferred build), some
        # 30 ms of CPU the first request would pay; these are the ones a request uses.
        for model in _REQUEST_TYPES:
            model.model_rebuild()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aio.aclose()
        if self._owns_session and self._session is not None:
            await self._session.close()

    def _sdk(self) -> genai.Client:
        """The SDK client, made on first use: its aiohttp session must be made in the loop."""
        if self._client is None:
            if self._session is None:
                # Our own plain session: the SDK's default one subclasses ClientSession,
                # which aiohttp deprecates with a warning on every first request.
                self._session = aiohttp.ClientSession(trust_env=True)
            options = types.HttpOptions(
                base_url=self._base_url,
                api_version="v1beta",
                timeout=self._timeout_ms,
                retry_options=types.HttpRetryOptions(attempts=1),
                aiohttp_client=self._session,
            )
            self._client = genai.Client(api_key=self._api_key, vertexai=False, http_options=options)
            _use_fast_field_reads()
        return self._client

    async def _pump(self, prompt: Prompt, queue: asyncio.Queue[_Item]) -> None:
        """Read the SDK stream into `queue`, one chunk ahead of the consumer."""
        try:
            upstream = await self._sdk().aio.models.generate_content_stream(
                model=self._model, contents=_contents(prompt), config=self._config(prompt)
            )
            async for response in upstream:
                await queue.put(response)
        except Exception as exc:  # not handled here: handed over to the consumer's task
            await queue.put(exc)
            return
        await queue.put(None)

    def _config(self, prompt: Prompt) -> types.GenerateContentConfig:
        key = (prompt.system, prompt.max_output_tokens, prompt.temperature)
        config = self._configs.get(key)
        if config is None:
            if len(self._configs) >= CONFIGS_KEPT:
                del self._configs[next(iter(self._configs))]
            config = self._configs[key] = _config(prompt)
        return config


_sdk_get_value_by_path = genai_common.get_value_by_path
# The name google.genai.models imports it as, and its converters call.
_SDK_READER = "getv"


def _get_value_by_path(data: Any, keys: list[str], *, default_value: Any = None) -> Any:
    """The SDK's `get_value_by_path`, with a short cut for one plain key.

    The SDK converts every request and every streamed chunk field by field with it. On a
    pydantic model it first tests `key in data`, which walks all the model's fields and
    never matches (a model iterates as (name, value) pairs), then falls back to
    `getattr`; on a dict its general path parsing costs more than the lookup. Going to
    `getattr` or `dict.get` at once gives the same value: converting a 21-turn request
    takes 0.4 ms instead of 3-4 ms, a streamed chunk's response dict 19 µs instead of 30.
    """
    if len(keys) == 1:
        key = keys[0]
        if key != "_self" and not key.endswith("]"):
            if type(data) is dict:
                return data.get(key, default_value) if data else default_value
            if isinstance(data, pydantic.BaseModel):
                return getattr(data, key, default_value)
    return _sdk_get_value_by_path(data, keys, default_value=default_value)


def _use_fast_field_reads() -> None:
    """Point the SDK's request converters at `_get_value_by_path` (idempotent).

    Only when they still use the function this was written against: an SDK that has
    changed keeps its own, slower but right.
    """
    if getattr(genai_models, _SDK_READER, None) is _sdk_get_value_by_path:
        setattr(genai_models, _SDK_READER, _get_value_by_path)


def _contents(prompt: Prompt) -> list[types.ContentDict]:
    """The turns as plain dicts: the SDK validates them once itself (typed `Content`s it
    validates over again, field by field: 9 ms instead of 2 ms for 21 turns)."""
    return [{"role": turn.role, "parts": [{"text": turn.text}]} for turn in prompt.turns]


def _config(prompt: Prompt) -> types.GenerateContentConfig:
    # Safety settings stay at the provider's defaults; a blocked answer ends as `safety`.
    return types.GenerateContentConfig(
        system_instruction=prompt.system,
        max_output_tokens=prompt.max_output_tokens,
        temperature=prompt.temperature,
        automatic_continuation=True,
    )


def _read(response: types.GenerateContentResponse) -> tuple[str, Finish | None, Usage | None]:
    """The visible text, the mapped finish and the usage of one SDK chunk.

    Raises:
        PromptBlocked: the chunk has no candidates, only promptFeedback.blockReason.
    """
    usage = _usage(response.usage_metadata)
    if not response.candidates:
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            reason = str(feedback.block_reason.value).lower()
            raise PromptBlocked(f"the prompt was blocked by the model provider ({reason})")
        return "", None, usage
    candidate = response.candidates[0]
    parts = candidate.content.parts if candidate.content and candidate.content.parts else []
    # Thought summaries (only sent when asked for) are not part of the answer.
    text = "".join(part.text for part in parts if part.text and not part.thought)
    return text, _finish(candidate.finish_reason), usage


def _finish(reason: types.FinishReason | None) -> Finish | None:
    if reason is None or reason == types.FinishReason.FINISH_REASON_UNSPECIFIED:
        return None
    if reason in _LENGTH:
        return "length"
    if reason in _SAFETY:
        return "safety"
    # STOP, and the rarer terminal reasons (OTHER, LANGUAGE, MALFORMED_...): the answer
    # is over and what arrived is all there is.
    return "stop"


def _usage(metadata: types.GenerateContentResponseUsageMetadata | None) -> Usage | None:
    if metadata is None:
        return None
    # Thinking tokens are billed as output, so they count as output here too.
    output = metadata.candidates_token_count, metadata.thoughts_token_count
    output_tokens = None if output == (None, None) else sum(n or 0 for n in output)
    return Usage(input_tokens=metadata.prompt_token_count, output_tokens=output_tokens)


def _translate(exc: Exception) -> Exception:
    """The LLMError a client sees for an upstream failure (caused by it); others unchanged."""
    translated: LLMError
    if isinstance(exc, errors.APIError):
        if exc.code == 429:
            translated = ProviderRateLimited()
        elif 400 <= exc.code < 500 and exc.code != 408:
            # Our request was refused (bad key, unknown model, prompt too long): the
            # provider is unusable for it, and sending it again will not change that.
            translated = ProviderUnavailable("model provider refused the request", retryable=False)
        else:
            translated = ProviderUnavailable()
    elif isinstance(exc, _NETWORK_ERRORS):
        translated = ProviderUnavailable()
    else:
        return exc
    translated.__cause__ = exc
    return translated
