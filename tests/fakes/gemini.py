"""A local Gemini: `POST /v1beta/models/{model}:streamGenerateContent?alt=sse`, scriptable.

It speaks the real wire format (camelCase JSON, one `data: {...}` event per chunk, each
followed by a blank line, `\\r\\n` line ends as Google sends them) so tests drive the real
google-genai SDK against it. Every request is recorded (path, query, headers, JSON body)
along with what happened to it: how many chunks went out, when the first did, and whether
the client went away before the script ended (`disconnected`).

Each request takes the next queued `Script` (`fake.script(...)`), or `fake.default` when
the queue is empty. Scripts are built with the functions below:

    fake.script(http_error(503), reply("Hello", " world"))
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

MODEL_VERSION = "gemini-fake-001"


@dataclass(frozen=True, slots=True)
class Send:
    """Write one SSE event carrying `payload`."""

    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Pause:
    """Sleep before the next step (a slow first token, a stall, a token rate)."""

    seconds: float


Step = Send | Pause


@dataclass(frozen=True, slots=True)
class Script:
    """What one request gets: an HTTP error before any streaming, or a sequence of steps."""

    steps: tuple[Step, ...] = ()
    status: int = 200
    error_body: dict[str, Any] | None = None


@dataclass(slots=True)
class Recorded:
    """One request as the fake received it, and how its response went."""

    path: str
    model: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float = field(default_factory=time.monotonic)
    chunks_sent: int = 0
    first_chunk_at: float | None = None  # time.monotonic() when the first event went out
    disconnected: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


def usage(prompt_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt_tokens + output_tokens,
    }


def event(
    text: str | None = None,
    *,
    finish: str | None = None,
    usage_metadata: dict[str, int] | None = None,
    **candidate: Any,
) -> Send:
    """One chunk with a single candidate; `text=None` leaves the content without parts."""
    content: dict[str, Any] = {"role": "model"}
    if text is not None:
        content["parts"] = [{"text": text}]
    cand: dict[str, Any] = {"content": content, "index": 0, **candidate}
    if finish is not None:
        cand["finishReason"] = finish
    payload: dict[str, Any] = {"candidates": [cand]}
    if usage_metadata is not None:
        payload["usageMetadata"] = usage_metadata
    payload["modelVersion"] = MODEL_VERSION
    payload["responseId"] = "fake-response"
    return Send(payload)


def _answer(texts: tuple[str, ...], finish: str, prompt_tokens: int, gap: float) -> list[Step]:
    """`texts` as chunks, the last carrying `finish` and usageMetadata."""
    steps: list[Step] = []
    for i, text in enumerate(texts):
        if gap and i:
            steps.append(Pause(gap))
        last = i == len(texts) - 1
        steps.append(
            event(
                text,
                finish=finish if last else None,
                usage_metadata=usage(prompt_tokens, len(texts)) if last else None,
            )
        )
    return steps


def reply(*texts: str, finish: str = "STOP", prompt_tokens: int = 12, gap: float = 0.0) -> Script:
    """A normal answer; usageMetadata on the last chunk (candidates = number of chunks)."""
    return Script(tuple(_answer(texts, finish, prompt_tokens, gap)))


def slow_first_token(seconds: float, *texts: str) -> Script:
    """Headers at once, then nothing for `seconds`, then a normal answer."""
    return Script((Pause(seconds), *_answer(texts, "STOP", 12, 0.0)))


def stall(*texts: str, seconds: float) -> Script:
    """Send `texts` without finishing, go silent for `seconds`, then finish."""
    steps: list[Step] = [event(text) for text in texts]
    steps += [Pause(seconds), event(" late", finish="STOP", usage_metadata=usage(12, 9))]
    return Script(tuple(steps))


def error_mid_stream(
    *texts: str, code: int = 500, status: str = "INTERNAL", message: str = "Internal error"
) -> Script:
    """Send `texts`, then an error object as an SSE event, as Gemini does mid-stream."""
    error = Send({"error": {"code": code, "message": message, "status": status}})
    return Script((*(event(text) for text in texts), error))


_HTTP_ERRORS: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    403: ("PERMISSION_DENIED", "Method doesn't allow unregistered callers."),
    429: ("RESOURCE_EXHAUSTED", "You exceeded your current quota."),
    500: ("INTERNAL", "An internal error has occurred."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
}


def http_error(status: int) -> Script:
    """An HTTP error before any streaming, with Google's JSON error body."""
    name, message = _HTTP_ERRORS[status]
    error: dict[str, Any] = {"code": status, "message": message, "status": name}
    if status == 429:
        retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"}
        error["details"] = [retry]
    return Script(status=status, error_body={"error": error})


def blocked_prompt(reason: str = "SAFETY") -> Script:
    """No candidates, only promptFeedback.blockReason (and usage)."""
    feedback = {
        "blockReason": reason,
        "safetyRatings": [
            {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}
        ],
    }
    payload = {
        "promptFeedback": feedback,
        "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12},
        "modelVersion": MODEL_VERSION,
    }
    return Script((Send(payload),))


def empty_max_tokens() -> Script:
    """A candidate without parts that ends at MAX_TOKENS (e.g. all budget spent thinking)."""
    return Script((event(None, finish="MAX_TOKENS", usage_metadata=usage(12, 0)),))


def safety_finish(*texts: str) -> Script:
    """`texts`, then a last chunk without text that stops for SAFETY."""
    rating = {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
    last = event(
        None,
        finish="SAFETY",
        usage_metadata=usage(12, len(texts)),
        safetyRatings=[rating],
    )
    return Script((*(event(text) for text in texts), last))


def continuation(*texts: str, checkpoint: str = "Y29udGludWU=") -> Script:
    """One hop of a long answer: the last chunk has CONTINUATION and a continuationToken."""
    steps = _answer(texts, "CONTINUATION", 12, 0.0)
    last = steps[-1]
    assert isinstance(last, Send)
    last.payload["candidates"][0]["continuationToken"] = checkpoint
    return Script(tuple(steps))


def tokens(n: int, rate: float, *, prompt_tokens: int = 12) -> Script:
    """`n` one-token chunks ("t0 ", "t1 ", ...) at `rate` tokens a second, the first after
    one interval, as a model decoding at that pace would."""
    steps: list[Step] = []
    for i in range(n):
        steps.append(Pause(1.0 / rate))
        last = i == n - 1
        steps.append(
            event(
                f"t{i} ",
                finish="STOP" if last else None,
                usage_metadata=usage(prompt_tokens, n) if last else None,
            )
        )
    return Script(tuple(steps))


class FakeGemini:
    """The fake server: `await start()`, point the SDK at `base_url`, `await stop()`."""

    def __init__(
        self, default: Script | None = None, *, port: int = 0, stamp: bool = False
    ) -> None:
        self.default = default or reply("Hello", " from", " the fake.")
        # stamp: each chunk's text "x " goes out as "x@<CLOCK_MONOTONIC ns at write> ",
        # and each finished request prints "request <received ns> <first chunk ns>".
        self.stamp = stamp
        self.requests: list[Recorded] = []
        self._scripts: deque[Script] = deque()
        self._runner: web.AppRunner | None = None
        self._port = port
        self.base_url = ""

    def script(self, *scripts: Script) -> None:
        """Queue scripts for the next requests, in order."""
        self._scripts.extend(scripts)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1beta/models/{model}:streamGenerateContent", self._stream)
        # handler_cancellation: a client that hangs up cancels the handler at once, which
        # is how the fake notices (and records) a disconnect even while it is sleeping.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        record = Recorded(
            path=request.path,
            model=request.match_info["model"],
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.json(),
        )
        self.requests.append(record)
        script = self._scripts.popleft() if self._scripts else self.default
        try:
            if record.query.get("alt") != "sse":
                return web.json_response({"error": {"code": 400, "message": "alt=sse"}}, status=400)
            if script.status != 200:
                return web.json_response(script.error_body, status=script.status)
            return await self._play(request, script, record)
        finally:
            record.done.set()

    async def _play(
        self, request: web.Request, script: Script, record: Recorded
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        first_stamp = 0
        try:
            for step in script.steps:
                if isinstance(step, Pause):
                    await asyncio.sleep(step.seconds)
                    continue
                payload = step.payload
                if self.stamp:
                    written = time.monotonic_ns()
                    first_stamp = first_stamp or written
                    payload = _stamped(payload, written)
                data = json.dumps(payload, separators=(",", ":"))
                await response.write(f"data: {data}\r\n\r\n".encode())
                record.chunks_sent += 1
                if record.first_chunk_at is None:
                    record.first_chunk_at = time.monotonic()
            await response.write_eof()
        except asyncio.CancelledError:
            record.disconnected = True
            raise
        except ConnectionResetError:
            record.disconnected = True
        if self.stamp and first_stamp:
            received = int(record.received_at * 1e9)
            print(f"request {received} {first_stamp}", flush=True)  # noqa: T201
        return response


def _stamped(payload: dict[str, Any], now: int) -> dict[str, Any]:
    """`payload` with its candidates' texts stamped with `now`, the write time."""
    if "candidates" not in payload:
        return payload
    candidates = []
    for cand in payload["candidates"]:
        parts = cand.get("content", {}).get("parts")
        if parts:
            parts = [
                {**part, "text": f"{part['text'].rstrip()}@{now} "} if "text" in part else part
                for part in parts
            ]
            cand = {**cand, "content": {**cand["content"], "parts": parts}}
        candidates.append(cand)
    return {**payload, "candidates": candidates}


def main() -> None:
    """Serve on its own for a benchmark: every request gets `tokens(n, rate)`."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.gemini")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0, help="tokens per second")
    parser.add_argument(
        "--stamp",
        action="store_true",
        help="tokens become 't<i>@<CLOCK_MONOTONIC ns at write> ', and each request prints "
        "'request <received ns> <first chunk ns>' (for the benchmark's latencies)",
    )
    args = parser.parse_args()

    async def serve() -> None:
        fake = FakeGemini(tokens(args.tokens, args.rate), port=args.port, stamp=args.stamp)
        await fake.start()
        print(fake.base_url, flush=True)  # the caller reads the address from here
        try:
            await asyncio.Event().wait()
        finally:
            await fake.stop()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
