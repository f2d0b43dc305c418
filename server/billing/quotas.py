"""The daily AI prompt allowance: a counter per user per UTC day on the key-value store.

A user's allowance is that of their best plan among the teams they belong to (one pro team
makes its members pro users). A prompt is granted on the plan looked up at most
`PLAN_KEPT` seconds ago, and refused only on a plan looked up now: an upgrade takes effect
at once, a downgrade as soon as the control stream tells of it (`plan_changed`,
`member_removed`; at worst after `PLAN_KEPT`), and a granted prompt costs no database read.
The count lives under a key per user and UTC day that expires a little after the day ends,
so nothing needs resetting.

A prompt waits for no lookup either: when a user enters a room with an assistant, their
plan and the day's recorded count are looked up in the background (`expect`), together
with other users' (one statement each for up to `LOOKUP_BATCH` users), and a plan that
grants a prompt when half its time is up is looked up again the same way.

The key-value store is fast but may forget (the in-memory default, with its instance):
every granted prompt is also added to the user's `usage_counters` row, in batches a
moment later, and the day's first prompt of a user on an instance starts a counter that
is missing from that row. A store (or database) that cannot be reached refuses the
prompt as `Unavailable`: never granted blind.

Refused calls are not counted: a refusal increments a second counter, and the prompts
used are the calls minus the refusals. A call is allowed only if its position among the
day's calls, less the refusals already recorded when it started, is within the allowance;
every refusal it discounts came from an earlier call, so concurrent calls can never be
granted more than the allowance (at worst one is refused that a serial order would allow).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from time import monotonic
from typing import Any

from errors import Unavailable
from server.billing.plans import PlanId, best_plan, daily_allowance, effective_plan
from server.config import PlanLimits
from storage import subscriptions, usage
from storage.db import Database, unavailable_when_down
from storage.kv import KeyValue
from storage.timestamps import rfc3339

logger = logging.getLogger(__name__)

# Keys outlive their day by this much, so a clock a little behind still finds them.
EXPIRY_MARGIN = timedelta(hours=1)
#: Seconds a user's plan is trusted to grant their prompts without a database read.
PLAN_KEPT = 60.0
#: Users whose plans and counts one background lookup reads, at most.
LOOKUP_BATCH = 500
#: Seconds granted prompts wait to be written to `usage_counters`, together.
SAVE_AFTER = 0.5


@dataclass(frozen=True, slots=True)
class Usage:
    """A user's AI use today, as GET /usage shows it."""

    plan: PlanId
    ai_prompts_today: int
    daily_ai_prompts: int
    resets_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "ai_prompts_today": self.ai_prompts_today,
            "daily_ai_prompts": self.daily_ai_prompts,
            "resets_at": rfc3339(self.resets_at),
        }


def next_midnight(now: datetime) -> datetime:
    """The start of the next UTC day after `now`."""
    return datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(), UTC)


class Quotas:
    """Counts AI prompts against the daily allowance of the caller's plan."""

    def __init__(
        self,
        kv: KeyValue,
        database: Database,
        limits: PlanLimits,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._kv = kv
        self._database = database
        self._limits = limits
        self._clock = clock
        self._plans: dict[str, tuple[PlanId, float]] = {}  # user -> plan, monotonic time read
        self._started: tuple[date, set[str]] = (date.min, set())  # users counted today here
        self._unsaved: Counter[tuple[str, date]] = Counter()
        self._saver: asyncio.Task[None] | None = None
        self._wanted: dict[str, None] = {}  # users to look up in the background, in order
        self._looking_up: set[str] = set()  # wanted, or being read
        self._lookups_done: asyncio.Future[None] | None = None  # when `_wanted` is empty
        self._lookups: asyncio.Task[None] | None = None

    async def plan_of(self, user_id: str) -> PlanId:
        """The best plan in force among the user's teams."""
        async with self._database.reads() as session:
            rows = await subscriptions.for_user(session, user_id)
        now = self._clock()
        return best_plan(
            effective_plan(row.status, row.status_since, now, self._limits) for row in rows
        )

    async def try_consume(self, user_id: str) -> bool:
        """Count one prompt for the user today; False (and nothing counted) past the allowance.

        Raises:
            Unavailable: the counter or the database cannot be reached.
        """
        if user_id in self._looking_up and self._lookups_done is not None:
            await asyncio.shield(self._lookups_done)  # already on its way: no second read
        plan, fresh = await self._plan_for_prompt(user_id)
        day = self._clock().astimezone(UTC).date()
        calls, refusals, ttl = self._keys(user_id)
        await self._start_counter(user_id, day, calls, ttl)
        refused_before = int(await self._kv.get(refusals) or 0)
        position = await self._kv.incr(calls, ttl) - refused_before
        granted = position <= daily_allowance(plan, self._limits)
        if not granted and not fresh:  # an upgrade counts at once
            plan = await self._fresh_plan(user_id)
            granted = position <= daily_allowance(plan, self._limits)
        if granted:
            self._save_later(user_id, day)
            return True
        await self._kv.incr(refusals, ttl)
        return False

    async def warm_up(self) -> None:
        """Run the queries of a day's first prompt once (at start-up), for nobody: their
        statements are compiled and prepared then, not on the first prompts."""
        day = self._clock().astimezone(UTC).date()
        try:
            with unavailable_when_down():
                await self.plan_of("")
                async with self._database.reads() as session:
                    await usage.prompts_on(session, "", day)
                    await subscriptions.statuses_of_users(session, [""])
                    await usage.prompts_of_users_on(session, [""], day)
        except Unavailable as exc:  # only a head start: the first prompts do it instead
            logger.warning("quotas: warm-up skipped: %s", exc)

    async def close(self) -> None:
        """Stop looking up; write what is still unsaved (at shut-down)."""
        self._wanted.clear()
        if self._lookups is not None:
            self._lookups.cancel()
            await asyncio.wait([self._lookups])
        if self._saver is not None:
            self._saver.cancel()
            await asyncio.wait([self._saver])
            self._saver = None
        await self._save(retry=False)

    def expect(self, user_id: str) -> None:
        """The user may prompt soon (they entered a room with an assistant): look up their
        plan and the day's recorded count in the background, so the prompt waits for
        neither."""
        kept = self._plans.get(user_id)
        if kept is not None and monotonic() - kept[1] < PLAN_KEPT / 2:
            day = self._clock().astimezone(UTC).date()
            if user_id in self._started_on(day):
                return
        if user_id in self._looking_up:
            return
        if self._lookups_done is None:
            self._lookups_done = asyncio.get_running_loop().create_future()
        self._looking_up.add(user_id)
        self._wanted[user_id] = None
        if self._lookups is None:
            self._lookups = asyncio.create_task(self._look_up_wanted(), name="quotas: lookups")

    def forget_plans(self, user_id: str | None = None) -> None:
        """A plan changed (`user_id` None: any team's) or the user left a team: read again."""
        if user_id is None:
            self._plans.clear()
        else:
            self._plans.pop(user_id, None)

    async def _look_up_wanted(self) -> None:
        """Look up the wanted users, a batch at a time, until none is left."""
        try:
            while self._wanted:
                users = list(islice(self._wanted, LOOKUP_BATCH))
                for user_id in users:
                    del self._wanted[user_id]
                try:
                    await self._look_up(users)
                except Exception as exc:  # noqa: BLE001 - only a head start: a prompt reads itself
                    logger.warning("quotas: looking up %d users failed: %r", len(users), exc)
                self._looking_up.difference_update(users)
        finally:
            # Cancelled (closing) or done: whoever waits goes on, reading for itself.
            self._lookups, done, self._lookups_done = None, self._lookups_done, None
            self._looking_up.clear()
            self._wanted.clear()
            if done is not None:
                done.set_result(None)

    async def _look_up(self, users: list[str]) -> None:
        """Read the plans and the day's recorded counts of `users`, one statement each."""
        now = self._clock()
        day = now.astimezone(UTC).date()
        async with self._database.reads() as session:
            statuses = await subscriptions.statuses_of_users(session, users)
            recorded = await usage.prompts_of_users_on(session, users, day)
        read_at = monotonic()
        for user_id in users:
            plans = (effective_plan(*row, now, self._limits) for row in statuses.get(user_id, ()))
            self._keep_plan(user_id, best_plan(plans), read_at)
        started = self._started_on(day)
        for user_id in users:
            if user_id not in started:
                calls, _refusals, ttl = self._keys(user_id)
                if recorded.get(user_id):
                    await self._kv.set_if_absent(calls, b"%d" % recorded[user_id], ttl)
                started.add(user_id)

    async def _plan_for_prompt(self, user_id: str) -> tuple[PlanId, bool]:
        """The user's plan as read at most PLAN_KEPT seconds ago; and whether read now."""
        kept = self._plans.get(user_id)
        if kept is not None:
            age = monotonic() - kept[1]
            if age < PLAN_KEPT:
                if age >= PLAN_KEPT / 2:
                    self.expect(user_id)  # read again before it is needed
                return kept[0], False
        return await self._fresh_plan(user_id), True

    async def _fresh_plan(self, user_id: str) -> PlanId:
        read_at = monotonic()
        with unavailable_when_down():
            plan = await self.plan_of(user_id)
        self._keep_plan(user_id, plan, read_at)
        return plan

    def _keep_plan(self, user_id: str, plan: PlanId, read_at: float) -> None:
        if len(self._plans) > 100_000:
            self._plans.clear()
        self._plans[user_id] = (plan, read_at)

    def _started_on(self, day: date) -> set[str]:
        """The users whose counter was started here on `day` (see `_start_counter`)."""
        started_day, started = self._started
        if started_day != day:
            self._started = started_day, started = day, set()
        return started

    async def _start_counter(self, user_id: str, day: date, calls: str, ttl: float) -> None:
        """The day's first prompt here: a counter the store lost starts from the database."""
        started = self._started_on(day)
        if user_id in started:
            return
        if await self._kv.get(calls) is None:
            with unavailable_when_down():
                async with self._database.reads() as session:
                    recorded = await usage.prompts_on(session, user_id, day)
            if recorded:
                await self._kv.set_if_absent(calls, b"%d" % recorded, ttl)
        started.add(user_id)

    def _save_later(self, user_id: str, day: date) -> None:
        self._unsaved[(user_id, day)] += 1
        if self._saver is None:
            self._saver = asyncio.create_task(self._save_soon(), name="quotas: usage_counters")

    async def _save_soon(self) -> None:
        await asyncio.sleep(SAVE_AFTER)
        self._saver = None
        await self._save()

    async def _save(self, *, retry: bool = True) -> None:
        counts, self._unsaved = self._unsaved, Counter()
        if not counts:
            return
        try:
            async with self._database.sessions.begin() as session:
                await usage.add_prompts(session, counts)
        except Exception as exc:  # noqa: BLE001 - a writer of its own: the counts wait
            logger.warning("usage_counters: saving %d counts failed: %r", len(counts), exc)
            self._unsaved.update(counts)
            if retry and self._saver is None:
                self._saver = asyncio.create_task(self._save_soon(), name="quotas: usage_counters")

    async def used_today(self, user_id: str) -> int:
        """Prompts granted to the user since the start of the UTC day."""
        calls, refusals, _ttl = self._keys(user_id)
        called = int(await self._kv.get(calls) or 0)
        refused = int(await self._kv.get(refusals) or 0)
        return max(0, called - refused)

    async def usage(self, user_id: str) -> Usage:
        plan = await self.plan_of(user_id)
        return Usage(
            plan=plan,
            ai_prompts_today=await self.used_today(user_id),
            daily_ai_prompts=daily_allowance(plan, self._limits),
            resets_at=next_midnight(self._clock()),
        )

    def _keys(self, user_id: str) -> tuple[str, str, float]:
        now = self._clock()
        day: date = now.astimezone(UTC).date()
        ttl = (next_midnight(now) - now + EXPIRY_MARGIN).total_seconds()
        return f"quota:ai:{day.isoformat()}:{user_id}", f"quota:ai-refused:{day}:{user_id}", ttl
