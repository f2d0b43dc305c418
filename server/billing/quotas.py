"""The daily AI prompt allowance: a counter per user per UTC day on the key-value store.

A user's allowance is that of their best plan among the teams they belong to (one pro team
makes its members pro users), looked up on every call so that a plan change takes effect
at once. The count lives under a key per user and UTC day that expires a little after the
day ends, so nothing needs resetting.

Refused calls are not counted: a refusal increments a second counter, and the prompts
used are the calls minus the refusals. A call is allowed only if its position among the
day's calls, less the refusals already recorded when it started, is within the allowance;
every refusal it discounts came from an earlier call, so concurrent calls can never be
granted more than the allowance (at worst one is refused that a serial order would allow).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from server.billing.plans import PlanId, best_plan, daily_allowance, effective_plan
from server.config import PlanLimits
from storage import subscriptions
from storage.db import Database
from storage.kv import KeyValue
from storage.timestamps import rfc3339

# Keys outlive their day by this much, so a clock a little behind still finds them.
EXPIRY_MARGIN = timedelta(hours=1)


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

    async def plan_of(self, user_id: str) -> PlanId:
        """The best plan in force among the user's teams."""
        async with self._database.reads() as session:
            rows = await subscriptions.for_user(session, user_id)
        now = self._clock()
        return best_plan(
            effective_plan(row.status, row.status_since, now, self._limits) for row in rows
        )

    async def try_consume(self, user_id: str) -> bool:
        """Count one prompt for the user today; False (and nothing counted) past the allowance."""
        allowance = daily_allowance(await self.plan_of(user_id), self._limits)
        calls, refusals, ttl = self._keys(user_id)
        refused_before = int(await self._kv.get(refusals) or 0)
        position = await self._kv.incr(calls, ttl)
        if position - refused_before <= allowance:
            return True
        await self._kv.incr(refusals, ttl)
        return False

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
