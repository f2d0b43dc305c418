"""The assistant's side of a room: queued prompts, the running generation, the live answer.

A RoomActor owns one `RoomAssistant` and calls it from its own task only. The assistant
queues prompts (one generation at a time per room), runs them (`actors.assistant.Run`),
lets the prompter or an admin cancel them, and follows whichever generation is live in
the room, from this instance or another: its text so far (for members who join
mid-answer) and its heartbeats (a generation that goes silent died with its instance
and is ended for everyone as `interrupted`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson

from actors.actor import reject, resolve
from actors.assistant import Job, Run, build_prompt, wants_answer
from actors.events import EventKind, RoomEvent, error_frame, frame
from actors.llm import Prompt
from actors.outbound import OutboundQueue
from actors.ports import MessageStore
from actors.room_messages import (
    AssistantDeps,
    CancelGeneration,
    GenerationDone,
    Post,
    Prompted,
    RoomMessage,
)
from errors import Forbidden, NotFound
from storage.messages import NewMessage, StoredMessage
from storage.rooms import RoomRecord

logger = logging.getLogger(__name__)

ENDED_REMEMBERED = 64  # generations whose end was seen, so a second end is dropped
_ENDS = (EventKind.AI_END, EventKind.AI_ERROR)


@dataclass(slots=True)
class LiveGeneration:
    """The text so far of a running generation, for members who join mid-answer."""

    start: RoomEvent
    gen_id: str
    parts: list[str] = field(default_factory=list)
    last_seen: float = 0.0  # loop time of its last delta or heartbeat


class RoomAssistant:
    """Prompts, generations and the live answer of one room (see the module docstring).

    Args:
        deps: the model, quotas and limits; None when the instance has no assistant (it
            still follows generations of other instances).
        publish: puts an event on the room's topic (every instance's members get it).
        deliver: hands an event to this instance's members directly.
        tell: tells the room a message (a committed prompt, a finished generation).
    """

    def __init__(
        self,
        room_id: str,
        deps: AssistantDeps | None,
        *,
        store: MessageStore,
        publish: Callable[[RoomEvent], Awaitable[None]],
        deliver: Callable[[RoomEvent], None],
        tell: Callable[[RoomMessage], None],
        interrupt_after: float,
    ) -> None:
        self.room_id = room_id
        self._deps = deps
        self._store = store
        self._publish = publish
        self._deliver = deliver
        self._tell = tell
        self._interrupt_after = interrupt_after
        self._queue: list[Job] = []
        self._running: tuple[Run, asyncio.Task[None]] | None = None
        self._live: LiveGeneration | None = None
        self._ended: dict[str, None] = {}  # recently ended generations (dedupe ai.end/error)

    @property
    def busy(self) -> bool:
        """A generation runs or waits: the room must not be passivated."""
        return self._running is not None or bool(self._queue)

    def stop(self) -> None:
        """Drop the queue and stop the running generation (it announces `interrupted`)."""
        self._queue.clear()
        if self._running is not None:
            self._running[1].cancel()

    # Prompts.

    def may_answer(self, post: Post, settings: RoomRecord | None) -> bool:
        """The room's mode (as last loaded) asks the assistant to answer this message."""
        return (
            self._deps is not None
            and post.message.author.kind == "user"
            and settings is not None
            and wants_answer(settings.assistant, post.ai)
        )

    async def prompted(self, prompted: Prompted) -> None:
        """Queue an answer if the sender has quota left (the mode was checked at commit)."""
        assert self._deps is not None  # noqa: S101 - only told when configured
        post = prompted.post
        author_id = post.message.author.id or ""
        if len(self._queue) >= self._deps.config.queue_size:
            _refuse(post, "rate_limited", "the assistant is busy in this room; try later")
            return
        if not await self._deps.quotas.try_consume(author_id):
            _refuse(post, "quota_exceeded", "your plan's daily AI allowance is used up")
            return
        self._queue.append(Job(self.room_id, prompted.seq, author_id))
        self._start_next()

    def done(self, gen_id: str) -> None:
        """A generation's task ended: start the next one."""
        if self._running is not None and self._running[0].job.gen_id == gen_id:
            self._running = None
        self._start_next()

    def cancel(self, request: CancelGeneration) -> None:
        running = self._running
        if running is None or running[0].job.gen_id != request.gen_id:
            reject(request.reply, NotFound("no such generation running in this room"))
            return
        run = running[0]
        if run.job.prompter_id != request.user_id and not request.may_cancel_any:
            reject(request.reply, Forbidden("only the prompter or a team admin may cancel"))
            return
        run.cancel()
        resolve(request.reply, None)

    def _start_next(self) -> None:
        if self._running is not None or not self._queue or self._deps is None:
            return
        job = self._queue.pop(0)
        run = Run(
            job,
            llm=self._deps.llm,
            load=self._load_context,
            store=self._store_answer,
            publish=lambda payload: self._publish(RoomEvent.of(payload)),
        )
        task = asyncio.create_task(run.run(), name=f"room:{self.room_id} gen {job.gen_id}")
        task.add_done_callback(lambda _: self._tell(GenerationDone(job.gen_id)))
        self._running = (run, task)

    async def _load_context(self, job: Job) -> Prompt:
        assert self._deps is not None  # noqa: S101 - only called when configured
        config = self._deps.config
        room = await self._store.room(self.room_id)
        history = await self._store.recent(self.room_id, job.prompt_seq, config.context_messages)
        return build_prompt(room.system_prompt if room else None, history, config)

    async def _store_answer(self, message: NewMessage) -> StoredMessage:
        [appended] = await self._store.append_many([message])
        return appended.message

    # The live generation, whichever instance runs it.

    def track(self, event: RoomEvent) -> bool:
        """Keep the text so far of the live generation, from its `ai.*` events.

        Returns False for events members must not get: heartbeats, and a second end of a
        generation (two instances may both declare a dead one interrupted).
        """
        now = asyncio.get_running_loop().time()
        if event.kind is EventKind.AI_START and event.gen is not None:
            self._live = LiveGeneration(event, event.gen, last_seen=now)
            return True
        if event.kind in _ENDS and event.gen is not None:
            if event.gen in self._ended:
                return False
            self._ended[event.gen] = None
            while len(self._ended) > ENDED_REMEMBERED:
                del self._ended[next(iter(self._ended))]
        if self._live is None or event.gen != self._live.gen_id:
            return event.kind is not EventKind.AI_BEAT
        self._live.last_seen = now
        if event.kind is EventKind.AI_DELTA:
            self._live.parts.append(orjson.loads(event.frame)["text"])
        elif event.kind in _ENDS:
            self._live = None
        return event.kind is not EventKind.AI_BEAT

    def catch_up(self, outbound: OutboundQueue) -> None:
        """Give a member who joins mid-answer the `ai.start` and the text so far."""
        live = self._live
        if live is None:
            return
        so_far = {
            "type": EventKind.AI_DELTA,
            "room": self.room_id,
            "gen": live.gen_id,
            "i": len(live.parts) - 1,
            "text": "".join(live.parts),
            "full": True,
        }
        full = RoomEvent(EventKind.AI_DELTA, frame(so_far), gen=live.gen_id, full=True)
        outbound.put_events([live.start, full])

    async def tick(self) -> None:
        """Heartbeat our running generation; end another instance's that went silent."""
        if self._running is not None:
            gen_id = self._running[0].job.gen_id
            await self._publish(
                RoomEvent.of({"type": EventKind.AI_BEAT, "room": self.room_id, "gen": gen_id})
            )
        elif self._live is not None:
            silent = asyncio.get_running_loop().time() - self._live.last_seen
            if silent > self._interrupt_after:
                await self._interrupted(self._live.gen_id)

    async def _interrupted(self, gen_id: str) -> None:
        """A generation of another instance went silent: its instance died. End it for all."""
        logger.warning("room %s: generation %s lost its heartbeat", self.room_id, gen_id)
        error = {
            "type": EventKind.AI_ERROR,
            "room": self.room_id,
            "gen": gen_id,
            "code": "interrupted",
            "message": "the generation was interrupted; ask again",
        }
        await self._publish(RoomEvent.of(error))
        if self._live is not None and self._live.gen_id == gen_id:
            self._deliver(RoomEvent.of(error))  # end it here even if the bus is down


def _refuse(post: Post, code: str, message: str) -> None:
    if post.sender is not None:
        post.sender.put(error_frame(code, message, post.re), EventKind.ERROR)
