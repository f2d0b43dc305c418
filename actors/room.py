"""The RoomActor: one per live room on an instance. It stores, orders and fans out.

Posts are committed in batches by the room's committer task (group commit: one
transaction for everything that arrived while the previous batch was committing), which
publishes the new events on the bus (or, while the bus refuses them, keeps them and
publishes them first when it is back: the relay) and then tells the room `Committed`.
The room, on its own task, acks each sender and decides the prompts. Events come back
from the bus (from this instance or any other) and are handed, encoded once, to the
outbound queues of the local members in `seq` order; a gap is held briefly and then
filled from the database, as is, on the tick, whatever was committed and never came.
What the mailbox holds at once (under load, a commit's events) reaches each member in
one hand-over. The room never awaits a socket.

Its messages are in `actors.room_messages`; its assistant side (prompts, generations,
the live answer) is `actors.room_assistant.RoomAssistant`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from actors.actor import Actor, reject, resolve
from actors.assistant import Run
from actors.errors import ActorError, ActorStopped, MailboxFull
from actors.events import EventKind, RoomEvent, frame
from actors.ports import MessageStore, UserRef
from actors.room_assistant import Actions, RoomAssistant
from actors.room_messages import (
    AssistantDeps,
    CancelGeneration,
    Changed,
    Committed,
    Deleted,
    Enter,
    Exit,
    FaultHook,
    FillGap,
    FromBus,
    GenerationDone,
    LeftReason,
    Member,
    Post,
    RoomMessage,
    Tick,
    UserTyping,
    publish,
    topic,
)
from actors.room_presence import RoomPresence
from errors import Invalid, NotFound, RoomcastError, Unavailable
from storage.bus import Bus, BusEvent, Subscription
from storage.messages import Appended, StoredMessage
from storage.presence import Presence
from storage.rooms import RoomRecord

logger = logging.getLogger(__name__)

#: Committed events kept for the bus while it is down; older ones are left to the database
#: (the other instances' gap fill and `_catch_up`). Few ever wait: sends are refused while
#: the bus probe is failing.
UNPUBLISHED_LIMIT = 10_000


class RoomActor(Actor[RoomMessage]):
    """Local members, group commit, ordered fan-out for one room."""

    def __init__(
        self,
        room_id: str,
        *,
        store: MessageStore,
        bus: Bus,
        presence: Presence,
        mailbox_size: int = 4096,
        batch_max: int = 512,
        gap_hold: float = 0.2,
        fault: FaultHook | None = None,
        assistant: AssistantDeps | None = None,
        bus_ready: Callable[[], bool] = lambda: True,
        interrupt_after: float = 6.0,
    ) -> None:
        super().__init__(f"room:{room_id}", mailbox_size=mailbox_size)
        self.room_id = room_id
        self._store = store
        self._bus = bus
        self._batch_max = batch_max
        self._gap_hold = gap_hold
        self._fault = fault
        # Kept across restarts: members stay connected and keep their order.
        self.members: dict[str, Member] = {}
        self.delivered_seq: int | None = None
        self._held: dict[int, RoomEvent] = {}
        self._outgoing: list[RoomEvent] = []  # collected, not yet handed to the members
        self._gap_timer: asyncio.TimerHandle | None = None
        self._pending: list[Post] = []
        self._unpublished: list[RoomEvent] = []  # committed, refused by the bus; in order
        self._expected_seq: int | None = None  # the room's last_seq at the previous tick
        self._has_pending = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        self._closing = False
        self._gone = False  # deleted: what is still queued is answered `not_found`
        self._subscription: Subscription | None = None
        self._settings: RoomRecord | None = None  # mode and system prompt, refreshed by Tick
        self._settings_read_at = 0.0  # loop time the read of `_settings` began
        self.presence = RoomPresence(room_id, presence)  # kept across restarts, as `members`
        self._bus_ready = bus_ready
        self.assistant = RoomAssistant(
            room_id, assistant, store=store, bus=bus, interrupt_after=interrupt_after
        )

    @property
    def settings(self) -> RoomRecord | None:
        """The room's settings as last read (None before it started)."""
        return self._settings

    # Life.

    async def on_start(self) -> None:
        if self._outgoing:
            await self._flush()  # collected before a crash: the members still get them
        if self.delivered_seq is None:
            read_at = asyncio.get_running_loop().time()
            room = await self._store.room(self.room_id)
            if room is None:
                raise NotFound("no such room")
            self.delivered_seq = room.last_seq
            self._settings, self._settings_read_at = room, read_at
            self.assistant.preload(room)
            await self.presence.load()  # who is here on other instances; then the tick
        if self._subscription is None:
            self._subscription = await self._bus.subscribe(topic(self.room_id), self._from_bus)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_loop(), name=f"{self.name} commit")

    async def on_stop(self) -> None:
        if self._outgoing:
            await self._flush()
        if self._committer is not None:
            self._closing = True  # the committer commits what was accepted, then ends
            self._has_pending.set()
            await self._committer
        await self.assistant.close()
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        if self._gap_timer is not None:
            self._gap_timer.cancel()

    def on_rejected(self, message: RoomMessage, error: ActorError) -> None:
        if isinstance(message, Post):  # told, not asked: its sender waits on its reply
            reject(message.reply, self._refusal_of_sends())
        elif isinstance(message, Committed):  # stored or refused: each sender still hears
            message.answer()

    def on_stopped(self) -> None:
        # After a crash or a cancellation `on_stop` did not run: the committer still
        # commits what the room accepted, then ends.
        self._closing = True
        self._has_pending.set()

    def _refusal_of_sends(self) -> RoomcastError:
        if self._gone:
            return NotFound("the room was deleted")
        return Unavailable("the room is unavailable; retry shortly")

    def is_idle(self) -> bool:
        busy = self._pending or self.assistant.busy
        return not self.members and not busy and super().is_idle()

    def _from_bus(self, bus_event: BusEvent) -> None:
        try:
            self.tell(FromBus(RoomEvent.unpack(bus_event.data)))
        except MailboxFull:
            # A stored event lost here is refetched by the gap fill; others are ephemeral.
            logger.warning(
                "room %s: mailbox full, dropping bus event %s", self.room_id, bus_event.id
            )
        except ActorStopped:
            pass
        except ValueError:
            logger.error("room %s: malformed bus event %s", self.room_id, bus_event.id)

    # Messages.

    async def on_receive(self, message: RoomMessage) -> None:
        if self._outgoing and not isinstance(message, FromBus):
            await self._flush()  # events collected so far go before anything else
        if self._fault is not None:
            self._fault(self.room_id, message)
        await self._handle(message)
        if self._outgoing and not self.mailbox_depth:
            await self._flush()

    async def _handle(self, message: RoomMessage) -> None:
        match message:
            case FromBus(event=event):
                if event.kind is EventKind.PRESENCE:
                    self.presence.heard(event)
                self._order(event)
            case Post():
                self._pending.append(message)
                self._has_pending.set()
            case Enter():
                await self._enter(message)
            case Exit(session_id=session_id, reason=reason, reply=reply):
                await self._exit(session_id, reason)
                if reply is not None:
                    resolve(reply, None)
            case UserTyping(user=user):
                typing = {"type": EventKind.TYPING, "room": self.room_id, "user": user.to_json()}
                await publish(self._bus, self.room_id, RoomEvent.of(typing, origin=user.id))
            case FillGap():
                await self._fill_gap()
            case Committed():
                await self._committed(message)
            case CancelGeneration():
                self.assistant.cancel(message)
            case Tick():
                await self._tick(message)
            case Changed():
                await self._reload_settings()
            case Deleted():
                self._deleted()
            case GenerationDone(gen_id=gen_id):
                await self._act(self.assistant.done(gen_id))

    async def _enter(self, enter: Enter) -> None:
        member = enter.member
        replaced = self.members.get(member.session_id)
        if replaced is not None:  # the same session entering again counts once
            self.presence.left(replaced.user.id)
        self.members[member.session_id] = member
        first_of_user = self.presence.entered(member.user)
        self.assistant.entered(member.user.id, self._settings)
        last = self.delivered_seq or 0
        joined = {
            "type": EventKind.JOINED,
            "room": self.room_id,
            "seq": last,
            "members": self.presence.everyone(),
        }
        if enter.re is not None:
            joined["re"] = enter.re
        member.outbound.put(frame(joined), EventKind.JOINED)
        if enter.since is not None and enter.since < last:
            for event in await self._store.events_between(self.room_id, enter.since, last):
                member.outbound.put(frame(event), EventKind(event["type"]))
        if so_far := self.assistant.so_far():
            member.outbound.put_events(so_far)
        resolve(enter.reply, last)
        if first_of_user:
            await self._announce(member.user, "online")

    async def _exit(self, session_id: str, reason: LeftReason | None = None) -> None:
        member = self.members.pop(session_id, None)
        if member is None:
            return
        if reason is not None:
            member.outbound.put(self._left_frame(reason), EventKind.LEFT)  # after all it got
        if self.presence.left(member.user.id):
            await self._announce(member.user, "offline")

    async def _announce(self, user: UserRef, state: str) -> None:
        event = {
            "type": EventKind.PRESENCE,
            "room": self.room_id,
            "user": user.to_json(),
            "state": state,
        }
        await publish(self._bus, self.room_id, RoomEvent.of(event))

    # The assistant's answers.

    async def _committed(self, committed: Committed) -> None:
        """Ack a committed batch (on this task), then let the assistant take its prompts."""
        for event in committed.unpublished:  # the bus refused them: our members get them now
            self._order(event)
        stored = committed.answer()
        if stored:
            await self._act(await self.assistant.committed(stored, self._settings))

    async def _act(self, actions: Actions) -> None:
        """Do what the assistant asks: tell refused prompters, publish, start a generation."""
        for session_id, error in actions.refusals:
            member = self.members.get(session_id)
            if member is not None:  # a sender who has left has nobody to tell
                member.outbound.put(error, EventKind.ERROR)
        for event in actions.publish:
            await publish(self._bus, self.room_id, event)
        for event in actions.local:
            self._order(event)
        if actions.start is not None:
            self._start(actions.start)

    def _start(self, run: Run) -> None:
        gen_id = run.job.gen_id
        run.start().add_done_callback(lambda _: self._generation_ended(gen_id))

    def _generation_ended(self, gen_id: str) -> None:
        try:
            self._notify_self(GenerationDone(gen_id))
        except ActorStopped:
            pass  # the room has stopped, and its queue of prompts with it

    # Ordered fan-out.

    def _order(self, event: RoomEvent) -> None:
        """Collect `event` for the members: stored events once each and in `seq` order."""
        if event.seq is None:
            if event.kind.is_ai and not self.assistant.track(event):
                return
            self._collect(event)
            return
        delivered = self.delivered_seq or 0
        if event.seq <= delivered:
            return  # already delivered (a replayed or duplicate event)
        if event.seq > delivered + 1:
            self._held[event.seq] = event
            if self._gap_timer is None:
                loop = asyncio.get_running_loop()
                self._gap_timer = loop.call_later(self._gap_hold, self._request_gap_fill)
            return
        self._collect(event)
        self.delivered_seq = event.seq
        while (following := self._held.pop((self.delivered_seq or 0) + 1, None)) is not None:
            self._collect(following)
            self.delivered_seq = following.seq

    def _collect(self, event: RoomEvent) -> None:
        """Collect `event` for the members; `_flush` hands them what collected in one go.

        The events of a commit (and everything else the mailbox holds at the time) then
        reach each member's socket in one write instead of one write per event.
        """
        self._outgoing.append(event)
        if event.seq is not None:
            self.assistant.remember(event)

    async def _flush(self) -> None:
        """Hand the members what was collected; one whose queue overflows is let go."""
        events, self._outgoing = self._outgoing, []
        typists = {event.origin for event in events if event.kind is EventKind.TYPING}
        overflowed = []
        for member in self.members.values():
            mine = events
            if typists and member.user.id in typists:  # nobody sees their own typing
                mine = [
                    e
                    for e in events
                    if e.kind is not EventKind.TYPING or e.origin != member.user.id
                ]
            if len(mine) == 1:
                delivered = member.outbound.put(mine[0].frame, mine[0].kind, mine[0].gen)
            else:
                delivered = member.outbound.put_events(mine)
            if not delivered:
                overflowed.append(member)
        for member in overflowed:
            self.members.pop(member.session_id, None)
            member.on_overflow()
            if self.presence.left(member.user.id):
                await self._announce(member.user, "offline")

    def _request_gap_fill(self) -> None:
        self._gap_timer = None
        try:
            self._notify_self(FillGap())  # a full mailbox must not leave the held events waiting
        except ActorStopped:
            pass

    async def _fill_gap(self) -> None:
        if not self._held:
            return
        delivered = self.delivered_seq or 0
        upto = min(self._held) - 1
        if upto > delivered:
            logger.info(
                "room %s: filling gap %d..%d from storage", self.room_id, delivered + 1, upto
            )
            for payload in await self._store.events_between(self.room_id, delivered, upto):
                self._order(RoomEvent.of(payload))
        if self._held and min(self._held) == (self.delivered_seq or 0) + 1:
            self._order(self._held.pop(min(self._held)))

    # Group commit.

    async def _commit_loop(self) -> None:
        batch: list[Post] = []
        try:
            while True:
                await self._has_pending.wait()
                batch = self._pending[: self._batch_max]
                del self._pending[: self._batch_max]
                if not self._pending:
                    self._has_pending.clear()
                if batch:
                    self._hand_over(await self._commit(batch))
                    batch = []  # the room answers them now
                elif self._unpublished:  # woken by a tick (or closing) to try the bus again
                    await self._publish_stored([])
                if self._closing and not self._pending:
                    return
        finally:
            # Cancelled or failed: nobody waits for ever on a send (answered ones are skipped).
            left, self._pending = [*batch, *self._pending], []
            for post in left:
                reject(post.reply, self._refusal_of_sends())

    async def _commit(self, batch: list[Post]) -> Committed:
        """Store `batch` and publish what is new; the outcome for the room to answer."""
        if not self._bus_ready():
            # No ack for what could not be delivered: the client retries with its client_id.
            return Committed(batch, [Unavailable("delivery is down; retry shortly")] * len(batch))
        outcomes = await self._store_posts(batch)
        fresh = [
            outcome.message
            for outcome in outcomes
            if isinstance(outcome, Appended) and not outcome.duplicate
        ]
        unpublished = await self._publish_stored(fresh)  # committed is acked, whatever the bus says
        return Committed(batch, outcomes, unpublished)

    def _hand_over(self, committed: Committed) -> None:
        """Tell the room a commit's outcome, even past a full mailbox: it holds the acks."""
        try:
            self._notify_self(committed)
        except ActorStopped:
            committed.answer()  # the room has stopped: no prompts, but every sender hears

    async def _store_posts(self, posts: list[Post]) -> list[Appended | RoomcastError]:
        """Store `posts` in order: each one's `Appended`, or the error that refuses it.

        A batch refused as `Invalid` holds a message the database will never take. Its
        halves are then stored one after the other, down to that message, so the others
        are still stored, with their `seq`s in the order they were sent and without gaps
        (a failed commit takes none). Any other failure refuses the whole batch: an
        unreachable database fails the halves alike.
        """
        try:
            return list(await self._store.append_many([post.message for post in posts]))
        except asyncio.CancelledError:
            raise
        except Invalid as exc:
            if len(posts) == 1:
                logger.warning("room %s: message refused: %s", self.room_id, exc.message)
                return [exc]
        except RoomcastError as exc:  # the room is gone (NotFound), or storage is down
            logger.warning("room %s: storing %d failed: %r", self.room_id, len(posts), exc)
            return [exc] * len(posts)
        except Exception:  # noqa: BLE001 - every sender learns; the room keeps serving
            logger.exception("room %s: storing %d messages failed", self.room_id, len(posts))
            return [Unavailable("could not store the message; retry")] * len(posts)
        half = len(posts) // 2
        return await self._store_posts(posts[:half]) + await self._store_posts(posts[half:])

    async def _publish_stored(self, messages: list[StoredMessage]) -> list[RoomEvent]:
        """Publish committed messages, after those the bus refused before, in `seq` order.

        What the bus refuses waits in `_unpublished` (the relay) and goes out, first, on
        the next commit or tick; meanwhile this instance's members get it at once: the
        events of `messages` the bus refused are returned for the room to order. Only
        the committer task calls this, so the relay has one writer. If this instance dies
        before the bus returns, the other instances' rooms fetch what they missed from the
        database (`_catch_up`).
        """
        events = [RoomEvent.of(message.to_event()) for message in messages]
        self._unpublished.extend(events)
        if not self._unpublished:
            return []
        try:
            packed = [event.pack() for event in self._unpublished]
            await self._bus.publish_many(topic(self.room_id), packed)
        except Exception as exc:  # noqa: BLE001 - committed: kept whatever fails
            logger.warning(
                "room %s: bus refused %d committed events; they wait: %r",
                self.room_id,
                len(self._unpublished),
                exc,
            )
            del self._unpublished[:-UNPUBLISHED_LIMIT]  # the oldest are in the database
            return events
        self._unpublished.clear()
        return []

    # Across instances.

    async def _tick(self, tick: Tick) -> None:
        if tick.settings is not None:
            if tick.read_at >= self._settings_read_at:  # not older than a reload of ours
                self._settings, self._settings_read_at = tick.settings, tick.read_at
            await self._catch_up(tick.settings.last_seq)
        if self._unpublished:
            self._has_pending.set()  # the committer tries the bus again
        self.presence.tick()
        await self._act(self.assistant.tick())

    async def _catch_up(self, last_seq: int) -> None:
        """Fetch from the database what was committed a tick ago and has still not come.

        The bus brings every event of a live instance, and a later event shows a gap at
        once. But an instance that committed messages and died before publishing them (its
        relay died with it), or a Redis that lost its streams, may leave a gap that no later
        event reveals. So each tick compares the room's `last_seq` read on the previous
        tick (`last_seq` is this tick's) with what was delivered; events still on their way
        are given a whole tick.
        """
        target, self._expected_seq = self._expected_seq, last_seq
        delivered = self.delivered_seq or 0
        if target is None or target <= delivered:
            return
        try:
            missed = await self._store.events_between(self.room_id, delivered, target)
        except Exception as exc:  # noqa: BLE001 - reads fail untyped (driver errors); retried
            logger.warning("room %s: catching up to %d failed: %r", self.room_id, target, exc)
            return
        logger.info("room %s: caught up %d..%d from storage", self.room_id, delivered + 1, target)
        for payload in missed:
            self._order(RoomEvent.of(payload))

    async def _reload_settings(self) -> None:
        """Pick up a changed mode or system prompt now (on `room_changed`)."""
        read_at = asyncio.get_running_loop().time()
        try:
            room = await self._store.room(self.room_id)
        except Exception as exc:  # noqa: BLE001 - reads fail untyped (driver errors)
            logger.warning("room %s: settings reload failed: %r", self.room_id, exc)
            return
        if room is not None:
            self._settings, self._settings_read_at = room, read_at

    def _left_frame(self, reason: LeftReason) -> bytes:
        return frame({"type": EventKind.LEFT, "room": self.room_id, "reason": reason})

    def _deleted(self) -> None:
        gone = self._left_frame(LeftReason.DELETED)
        for member in self.members.values():
            member.outbound.put(gone, EventKind.LEFT)
            self.presence.left(member.user.id)
        self.members.clear()
        self._gone = True
        pending, self._pending = self._pending, []
        for post in pending:  # not yet committing: the room row is gone
            reject(post.reply, self._refusal_of_sends())
        self.stop_nowait(drain=False)
