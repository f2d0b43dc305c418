"""The assistant's side of a room: queued prompts, the running generation, the live answer.

A RoomActor owns one `RoomAssistant` and calls it from its own task only; the assistant
answers with what the room should do (`Actions`) and never calls back into the room. It
queues prompts (one generation at a time per room), hands the room each
`actors.assistant.Run` to start, lets the prompter or an admin cancel it, and follows
whichever generation is live in the room, from this instance or another: its text so far
(for members who join mid-answer) and its heartbeats (a generation that goes silent died
with its instance and is ended for everyone as `interrupted`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import orjson

from actors.actor import reject, resolve
from actors.assistant import Job, Run, prompt_of, wants_answer
from actors.assistant_memory import ContextMemory, Remembered
from actors.events import EventKind, RoomEvent, error_frame, frame
from actors.llm import Prompt
from actors.ports import MessageStore
from actors.room_messages import AssistantDeps, CancelGeneration, Post, publish
from errors import Forbidden, NotFound, Unavailable
from storage.bus import Bus
from storage.messages import Appended, NewMessage, StoredMessage
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


@dataclass(slots=True)
class Actions:
    """What the room does for its assistant; the assistant never calls back into the room."""

    publish: list[RoomEvent] = field(default_factory=list)  # for every instance's members
    local: list[RoomEvent] = field(default_factory=list)  # for this instance's, now
    refusals: list[tuple[str, bytes]] = field(default_factory=list)  # (session id, error)
    start: Run | None = None  # a generation to run; its end comes back as GenerationDone


class RoomAssistant:
    """Prompts, generations and the live answer of one room (see the module docstring).

    Args:
        deps: the model, quotas and limits; None when the instance has no assistant (it
            still follows generations of other instances).
        bus: where a generation publishes its `ai.*` events and its answer.
    """

    def __init__(
        self,
        room_id: str,
        deps: AssistantDeps | None,
        *,
        store: MessageStore,
        bus: Bus,
        interrupt_after: float,
    ) -> None:
        self.room_id = room_id
        self._deps = deps
        self._store = store
        self._bus = bus
        self._interrupt_after = interrupt_after
        self._queue: list[Job] = []
        self._running: Run | None = None
        self._live: LiveGeneration | None = None
        self._ended: dict[str, None] = {}  # recently ended generations (dedupe ai.end/error)
        # The prompts' context: the room's newest messages (see actors.assistant_memory).
        self._memory: ContextMemory | None = None
        self._preload: asyncio.Task[list[StoredMessage]] | None = None
        self._preload_upto = 0
        self._system_prompt: str | None = None
        if deps is not None:
            budget = deps.config
            self._memory = ContextMemory(
                max_tokens=2 * budget.context_tokens, max_messages=2 * budget.context_messages
            )

    @property
    def busy(self) -> bool:
        """A generation runs or waits: the room must not be passivated."""
        return self._running is not None or bool(self._queue)

    def stop(self) -> None:
        """Drop the queue and stop the running generation (it announces `interrupted`)."""
        self._queue.clear()
        if self._preload is not None:
            self._preload.cancel()
        if self._running is not None:
            self._running.abort()

    async def close(self) -> None:
        """`stop`, and wait for the context's load to end: the room leaves no task behind."""
        self.stop()
        if self._preload is not None:
            await asyncio.wait([self._preload])
            self._preload = None

    # The context.

    def preload(self, settings: RoomRecord) -> None:
        """The room started: load its newest messages now, so no prompt waits for them."""
        self._system_prompt = settings.system_prompt
        if self._deps is None or settings.assistant == "off" or self._preload is not None:
            return
        self._preload_upto = upto = settings.last_seq
        limit = self._deps.config.context_messages
        self._preload = asyncio.create_task(
            self._store.recent(self.room_id, upto, limit), name=f"room:{self.room_id} context"
        )
        # A failed preload is not an error: the first prompt reads the database instead.
        self._preload.add_done_callback(lambda task: task.cancelled() or task.exception())

    def entered(self, user_id: str, settings: RoomRecord | None) -> None:
        """A user entered the room: if it answers prompts, get their allowance ready."""
        if self._deps is not None and settings is not None and settings.assistant != "off":
            self._deps.quotas.expect(user_id)

    def remember(self, event: RoomEvent) -> None:
        """A stored event reached the members in `seq` order: the context grows by it."""
        if self._memory is not None and event.kind is EventKind.MESSAGE:
            self._memory.add(Remembered.from_event(orjson.loads(event.frame)))

    # Prompts.

    async def committed(
        self, stored: list[tuple[Post, Appended]], settings: RoomRecord | None
    ) -> Actions:
        """Queue an answer to each newly stored message the room's mode (as last loaded)
        asks for, if its sender has quota left; refuse the others' senders."""
        actions = Actions()
        if self._deps is None or settings is None:
            return actions
        self._system_prompt = settings.system_prompt
        assert self._memory is not None  # noqa: S101 - made with the deps
        for _post, appended in stored:
            self._memory.add(Remembered.of(appended.message))
        for post, appended in stored:
            author = post.message.author
            if author.kind == "user" and wants_answer(settings.assistant, post.ai):
                refusal = await self._queue_prompt(author.id or "", appended.message.seq)
                if refusal is not None and post.session_id is not None:
                    # The message is stored: the error names it, so it is not taken for
                    # a refusal of the send (whose ack comes too).
                    refused = error_frame(
                        *refusal, post.re, room=self.room_id, seq=appended.message.seq
                    )
                    actions.refusals.append((post.session_id, refused))
        actions.start = self._next()
        return actions

    async def _queue_prompt(self, author_id: str, seq: int) -> tuple[str, str] | None:
        """Queue a prompt; or the code and message of the error that refuses it."""
        assert self._deps is not None  # noqa: S101 - only called when configured
        if len(self._queue) >= self._deps.config.queue_size:
            return "rate_limited", "the assistant is busy in this room; try later"
        try:
            granted = await self._deps.quotas.try_consume(author_id)
        except Unavailable:  # never granted blind: refused, the message itself is stored
            return "unavailable", "the assistant cannot check your allowance now; try again"
        if not granted:
            return "quota_exceeded", "your plan's daily AI allowance is used up"
        now = asyncio.get_running_loop().time()
        self._queue.append(Job(self.room_id, seq, author_id, committed_at=now))
        self._deps.observer.queued(len(self._queue))
        return None

    def done(self, gen_id: str) -> Actions:
        """A generation's task ended: the next one to start, if any."""
        if self._running is not None and self._running.job.gen_id == gen_id:
            self._running = None
        return Actions(start=self._next())

    def cancel(self, request: CancelGeneration) -> None:
        """Answer a `cancel`: stop the running generation if it is the one asked for."""
        run = self._running
        if run is None or run.job.gen_id != request.gen_id:
            reject(request.reply, NotFound("no such generation running in this room"))
            return
        if run.job.prompter_id != request.user_id and not request.may_cancel_any:
            reject(request.reply, Forbidden("only the prompter or a team admin may cancel"))
            return
        run.cancel()
        resolve(request.reply, None)

    def _next(self) -> Run | None:
        """The next queued prompt's run, when none runs (the room starts it)."""
        if self._running is not None or not self._queue or self._deps is None:
            return None
        self._running = Run(
            self._queue.pop(0),
            llm=self._deps.llm,
            load=self._load_context,
            store=self._store_answer,
            publish=lambda payload: publish(self._bus, self.room_id, RoomEvent.of(payload)),
            observer=self._deps.observer,
        )
        return self._running

    async def _load_context(self, job: Job) -> Prompt:
        """The prompt from the room's memory; from the database when the memory has a hole."""
        assert self._deps is not None  # noqa: S101 - only called when configured
        assert self._memory is not None  # noqa: S101 - made with the deps
        config, memory = self._deps.config, self._memory
        if not memory.loaded and self._preload is not None:
            preload, self._preload = self._preload, None
            try:
                memory.load(await asyncio.shield(preload), self._preload_upto)
            except Exception as exc:  # noqa: BLE001 - reads fail untyped; the database again
                logger.warning("room %s: context preload failed: %r", self.room_id, exc)
        turns = memory.context(job.prompt_seq)
        if turns is None:
            limit = config.context_messages
            history = await self._store.recent(self.room_id, job.prompt_seq, limit)
            memory.load(history, job.prompt_seq)
            turns = [Remembered.of(message).turn for message in history]
        return prompt_of(self._system_prompt, turns, config)

    async def _store_answer(self, message: NewMessage) -> StoredMessage:
        [appended] = await self._store.append_many([message])
        if (
            self._memory is not None
        ):  # before the bus brings it back: the next prompt may come first
            self._memory.add(Remembered.of(appended.message))
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

    def so_far(self) -> list[RoomEvent]:
        """For a member who joins mid-answer: the live `ai.start` and the text so far."""
        live = self._live
        if live is None:
            return []
        so_far = {
            "type": EventKind.AI_DELTA,
            "room": self.room_id,
            "gen": live.gen_id,
            "i": len(live.parts) - 1,
            "text": "".join(live.parts),
            "full": True,
        }
        full = RoomEvent(EventKind.AI_DELTA, frame(so_far), gen=live.gen_id, full=True)
        return [live.start, full]

    def tick(self) -> Actions:
        """Heartbeat our running generation; end another instance's that went silent."""
        if self._running is not None:
            beat = {
                "type": EventKind.AI_BEAT,
                "room": self.room_id,
                "gen": self._running.job.gen_id,
            }
            return Actions(publish=[RoomEvent.of(beat)])
        if self._live is not None:
            silent = asyncio.get_running_loop().time() - self._live.last_seen
            if silent > self._interrupt_after:
                return self._interrupted(self._live.gen_id)
        return Actions()

    def _interrupted(self, gen_id: str) -> Actions:
        """A generation of another instance went silent: its instance died. End it for all,
        and here even while the bus is down."""
        logger.warning("room %s: generation %s lost its heartbeat", self.room_id, gen_id)
        error = {
            "type": EventKind.AI_ERROR,
            "room": self.room_id,
            "gen": gen_id,
            "code": "interrupted",
            "message": "the generation was interrupted; ask again",
        }
        event = RoomEvent.of(error)
        return Actions(publish=[event], local=[event])
