"""What google-genai costs the server's CPU per request sent and per chunk streamed.

    .venv/bin/python -m loadtests.genai_cost               # 1 and 50 concurrent requests
    .venv/bin/python -m loadtests.genai_cost --profile 40  # and the per-chunk profile

The fake Gemini (`tests.fakes.gemini`) runs in its own process, so only the client's
work is counted: CPU time of this process (`time.process_time`), divided by what was
done. Two layers are measured: the bare SDK (`client.aio.models.generate_content_stream`
with the config `GeminiLLM` sends) and Roomcast's (`ResilientLLM` around `GeminiLLM`,
as the server builds them), both on one aiohttp session.

- Per request: the fake's first chunk comes after one second; the CPU spent from the
  calls until 0.5 s later, when every request is long on the wire and waiting, less what
  0.5 s of waiting alone costs, divided by the number of requests. Connections are made
  fresh (cold) and then reused (warm).
- Per chunk: every stream reads 200 one-token chunks (`--rate` a second, one SSE event
  per write as Gemini sends them); CPU of the whole run less the measured request cost,
  divided by the chunks.
- Per chunk, step by step: the SDK's own steps from an SSE line to the chunk it yields,
  each run 5,000 times on one chunk of the fake (no network, no event loop); names of
  the SDK's internals, so this part may need adapting after an SDK upgrade.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from google.genai import _extra_utils, models, types

from actors.llm import Prompt, Turn
from server.llm.gemini import GeminiLLM, _contents, _read, _use_fast_field_reads
from server.llm.resilience import ResilientLLM
from tests.fakes.gemini import event

PROMPT = Prompt(
    system="You are the room's assistant. Answer briefly.",
    turns=tuple(Turn("user" if i % 2 == 0 else "model", f"message {i} " * 8) for i in range(21)),
    temperature=0.7,
    max_output_tokens=1024,
)

Opener = Callable[[], Awaitable[AsyncIterator[object]]]


class Fake:
    """`python -m tests.fakes.gemini` in a subprocess; its address in `base_url`."""

    def __init__(self, tokens: int, rate: float) -> None:
        self._args = ["--tokens", str(tokens), "--rate", str(rate)]
        self.base_url = ""
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Fake:
        command = [sys.executable, "-m", "tests.fakes.gemini", *self._args]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        self.base_url = self._process.stdout.readline().strip()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._process is not None
        self._process.terminate()
        self._process.wait()


class Layers:
    """The two ways of opening a stream, over one aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.gemini = GeminiLLM(
            "bench-key", "gemini-bench", base_url=base_url, request_timeout_s=60,
            http_session=session,
        )  # fmt: skip
        self.roomcast = ResilientLLM(
            self.gemini, first_token_timeout=30, idle_timeout=30, retries=0,
            backoff_base=0.1, breaker_failures=1000, breaker_cooldown=1,
        )  # fmt: skip

    async def sdk(self) -> AsyncIterator[object]:
        client = self.gemini._sdk()
        stream = await client.aio.models.generate_content_stream(
            model="gemini-bench",
            contents=_contents(PROMPT),
            config=self.gemini._config(PROMPT),
        )
        return stream

    async def ours(self) -> AsyncIterator[object]:
        return self.roomcast.stream(PROMPT)


async def _drain(open_stream: Opener) -> int:
    stream = await open_stream()
    count = 0
    async for _ in stream:
        count += 1
    return count


async def request_cost(base_url: str, layer: str, n: int) -> tuple[float, float]:
    """CPU µs per request sent, with new connections and then with reused ones."""
    figures = []
    async with aiohttp.ClientSession() as session:
        layers = Layers(session, base_url)
        await layers.gemini.warm_up()
        open_stream: Opener = getattr(layers, layer)
        for _ in range(2):  # cold connections, then warm ones
            start = time.process_time()
            await asyncio.sleep(0.5)
            idle = time.process_time() - start  # what the window costs with nothing sent
            start = time.process_time()
            tasks = [asyncio.create_task(_drain(open_stream)) for _ in range(n)]
            await asyncio.sleep(0.5)
            figures.append((time.process_time() - start - idle) / n * 1e6)
            await asyncio.gather(*tasks)
    return figures[0], figures[1]


async def chunk_cost(
    base_url: str, layer: str, n: int, request_us: float, profile: cProfile.Profile | None
) -> tuple[float, int]:
    """CPU µs per chunk received, all `n` streams at once (connections warmed first)."""
    async with aiohttp.ClientSession() as session:
        layers = Layers(session, base_url)
        await layers.gemini.warm_up()
        open_stream: Opener = getattr(layers, layer)
        # A first full round makes the connections and builds the SDK's types.
        await asyncio.gather(*(_drain(open_stream) for _ in range(n)))
        if profile is not None:
            profile.enable()
        start = time.process_time()
        counts = await asyncio.gather(*(_drain(open_stream) for _ in range(n)))
        spent = time.process_time() - start
        if profile is not None:
            profile.disable()
    chunks = sum(counts)
    return (spent * 1e6 - request_us * n) / chunks, chunks


def chunk_steps(repeat: int = 5000) -> list[tuple[str, float]]:
    """CPU µs of each step the SDK takes from one SSE line to one chunk, then ours."""
    line = json.dumps(event("t7 ").payload, separators=(",", ":"))
    headers = {"Content-Type": "text/event-stream", "Date": "Wed, 25 Nov 2026 23:00:00 GMT"}
    headers |= {"Server": "Python/3.11 aiohttp/3.11", "Transfer-Encoding": "chunked"}
    continuation = _extra_utils.StreamContinuation(None)
    continuation.start_hop()
    loaded = json.loads(line)
    converted = models._GenerateContentResponse_from_mldev(json.loads(line), None, None)
    response = types.GenerateContentResponse._from_response(response=dict(converted), kwargs={})
    steps: list[tuple[str, Callable[[], object]]] = [
        ("json: loads, dumps, loads again", lambda: json.loads(json.dumps(json.loads(line)))),
        (
            "types.HttpResponse(headers, body)",
            lambda: types.HttpResponse(headers=headers, body=line),
        ),
        (
            "_GenerateContentResponse_from_mldev",
            lambda: models._GenerateContentResponse_from_mldev(dict(loaded), None, None),
        ),
        (
            "GenerateContentResponse._from_response",
            lambda: types.GenerateContentResponse._from_response(
                response=dict(converted), kwargs={}
            ),
        ),
        ("types.HttpResponse(headers)", lambda: types.HttpResponse(headers=headers)),
        ("continuation observe", lambda: continuation.observe(response)),
        ("GeminiLLM _read", lambda: _read(response)),
    ]
    figures = []
    for name, step in steps:
        start = time.process_time()
        for _ in range(repeat):
            step()
        figures.append((name, (time.process_time() - start) / repeat * 1e6))
        if name.endswith("_from_mldev"):  # again with the reads GeminiLLM's client uses
            sdk_reader = getattr(models, "getv")  # noqa: B009 - not exported
            _use_fast_field_reads()
            start = time.process_time()
            for _ in range(repeat):
                step()
            figures.append(
                (f"{name} (Roomcast's reads)", (time.process_time() - start) / repeat * 1e6)
            )
            setattr(models, "getv", sdk_reader)  # noqa: B010 - not exported
    return figures


async def run(args: argparse.Namespace) -> None:
    for name, cost in chunk_steps():
        print(f"step     {name:58} {cost:6.1f} µs")  # noqa: T201
    print("CPU of this process; the fake runs in another.")  # noqa: T201
    with Fake(tokens=1, rate=1.0) as slow:
        for layer in ("sdk", "ours"):
            for n in (1, 50):
                cold, warm = await request_cost(slow.base_url, layer, n)
                line = f"request  {layer:4} x{n:<3} {cold:7.0f} µs cold  {warm:7.0f} µs warm"
                print(line)  # noqa: T201
                args.request_us[(layer, n)] = warm
    with Fake(tokens=200, rate=args.rate) as fast:
        for layer in ("sdk", "ours"):
            for n in (1, 50):
                per_chunk, chunks = await chunk_cost(
                    fast.base_url, layer, n, args.request_us[(layer, n)], None
                )
                line = f"chunk    {layer:4} x{n:<3} {per_chunk:7.1f} µs  ({chunks} chunks)"
                print(line)  # noqa: T201
        if args.profile:
            profile = cProfile.Profile()
            await chunk_cost(fast.base_url, "ours", 50, 0.0, profile)
            stats = pstats.Stats(profile)
            stats.sort_stats("tottime").print_stats(args.profile)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtests.genai_cost")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens a second a stream")
    parser.add_argument("--profile", type=int, default=0, help="print this many functions")
    args = parser.parse_args()
    args.request_us = {}
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
