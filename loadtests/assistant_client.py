"""The assistant scenario's client side, run inside a load-client process.

`Assist(port, rooms, timeout)`: connect and join every member of every room, then one
member per room (the room plan's publisher) sends a prompt with `"ai": true`, all rooms
at once; every member (the prompter too) then records, until its `ai.end` (or
`ai.error`, or the timeout):

- its time to first delta: receipt of the first `ai.delta` minus the prompt's send time
  (CLOCK_MONOTONIC is shared by every process of the machine);
- the fake Gemini's write stamp of the first token (`t0@<ns>`, `--stamp`), which the
  parent matches with the fake's own request log (received, first chunk written);
- per token, receipt minus the fake's write stamp: the delta delivery latency;
- whether the answer is complete: `ai.end` arrived with finish `stop`, the assistant's
  stored `message` (the event the server sends from what it committed, `seq` as in
  `ai.end`) arrived, and the concatenated deltas equal its body.
"""

from __future__ import annotations

import asyncio
import re
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from loadtests.wsclient import WsClient, open_ws

HOST = "127.0.0.1"
PROMPT = "Please summarise the discussion so far in a couple of hundred words."
CONNECT_CONCURRENCY = 64
STAMP = re.compile(r"@(\d+) ")


@dataclass(frozen=True, slots=True)
class AssistRoom:
    room_id: str
    tokens: tuple[str, ...]  # the first member sends the prompt


@dataclass(frozen=True, slots=True)
class Assist:
    port: int
    rooms: tuple[AssistRoom, ...]
    timeout: float  # seconds to wait for every answer after the prompts went out


@dataclass(slots=True)
class PromptState:
    room_id: str
    sent_ns: int = 0
    acked: bool = False
    error: str = ""


@dataclass(slots=True)
class Member:
    """One member's view of its room's generation."""

    prompt: PromptState
    latencies: array[int]  # shared by the process: receipt - fake's write stamp, per token
    first_delta_ns: int = 0
    first_stamp: int = 0
    deltas: int = 0
    parts: list[str] = field(default_factory=list)
    end_seq: int = -1
    finish: str = ""
    error: str = ""
    assistant_bodies: dict[int, str] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return bool(self.error) or (self.end_seq >= 0 and self.end_seq in self.assistant_bodies)

    def on_text(self, payload: bytes, now: int) -> None:
        frame = orjson.loads(payload)
        kind = frame.get("type")
        if kind == "ai.delta":
            text = str(frame.get("text", ""))
            if frame.get("full"):
                self.parts.clear()
            if not self.deltas:
                self.first_delta_ns = now
                stamp = STAMP.search(text)
                self.first_stamp = int(stamp[1]) if stamp else 0
            self.deltas += 1
            self.parts.append(text)
            for match in STAMP.finditer(text):
                self.latencies.append(now - int(match[1]))
        elif kind == "message":
            author = frame.get("author") or {}
            if author.get("kind") == "assistant":
                self.assistant_bodies[int(frame["seq"])] = str(frame.get("body", ""))
        elif kind == "ai.end":
            self.end_seq = int(frame.get("seq") or 0)
            self.finish = str(frame.get("finish"))
        elif kind == "ai.error":
            self.error = str(frame.get("code"))
        elif kind == "ack" and frame.get("client_id") == "prompt":
            self.prompt.acked = True
        elif kind == "error":
            self.prompt.error = str(frame.get("code"))

    def verdict(self) -> str:
        """ "complete", or why not."""
        if self.error:
            return f"ai.error {self.error}"
        if self.end_seq < 0:
            return "no ai.end" if self.deltas else "no ai.delta"
        if self.finish != "stop":
            return f"finish {self.finish}"
        body = self.assistant_bodies.get(self.end_seq)
        if body is None:
            return "no stored message"
        if "".join(self.parts) != body:
            return "deltas differ from the stored body"
        return "complete"


async def _member(
    port: int, room_id: str, token: str, gate: asyncio.Semaphore
) -> tuple[WsClient, int]:
    async with gate:
        client = await open_ws(HOST, port, token)
        await client.next_frame("ready")
        client.send_json({"type": "join", "room": room_id})
        joined = await client.next_frame("joined")
    return client, int(joined["seq"])


async def run_assist(command: Assist) -> dict[str, Any]:
    """Connect, prompt every room at once, wait for every member's answer; the figures."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    latencies: array[int] = array("q")
    prompts = [PromptState(room.room_id) for room in command.rooms]
    opened = await asyncio.gather(
        *(
            _member(command.port, room.room_id, token, gate)
            for room in command.rooms
            for token in room.tokens
        )
    )
    clients = [client for client, _seq in opened]
    members: list[Member] = []
    prompters: list[tuple[WsClient, PromptState]] = []
    index = 0
    for room, prompt in zip(command.rooms, prompts, strict=True):
        for position in range(len(room.tokens)):
            member = Member(prompt, latencies)
            clients[index].on_text = member.on_text
            members.append(member)
            if position == 0:
                prompters.append((clients[index], prompt))
            index += 1
    try:
        await asyncio.sleep(0.5)  # the presence events of the last joins go by
        for client, prompt in prompters:
            frame = {
                "type": "send",
                "room": prompt.room_id,
                "body": PROMPT,
                "ai": True,
                "client_id": "prompt",
            }
            prompt.sent_ns = time.monotonic_ns()
            client.send_json(frame)
        deadline = time.monotonic() + command.timeout
        while time.monotonic() < deadline and not all(m.finished for m in members):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    finally:
        for client in clients:
            client.close()
        await asyncio.sleep(0.2)
    verdicts = Counter(member.verdict() for member in members)
    return {
        "members": len(members),
        "ttfd": [m.first_delta_ns - m.prompt.sent_ns for m in members if m.deltas],
        "first_stamps": [m.first_stamp for m in members if m.deltas],
        "sent": [m.prompt.sent_ns for m in members if m.deltas],
        "latencies": latencies,
        "deltas": sum(m.deltas for m in members),
        "verdicts": dict(verdicts),
        "prompt_errors": dict(Counter(p.error for p in prompts if p.error)),
        "unacked_prompts": sum(not p.acked for p in prompts),
    }
