"""The two plans, and which one a team is on given its Stripe subscription status.

A team that never paid has no subscription row and is on `basic`. A subscription maps to
a plan by its status: `active` and `trialing` are `pro`; `past_due` stays `pro` for the
grace period counted from when the status became `past_due`, then falls to `basic`;
everything else (`canceled`, `unpaid`, `incomplete`, `incomplete_expired`, `paused`) is
`basic`. A user's plan is the best plan among the teams they belong to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from server.config import PlanLimits

PlanId = Literal["basic", "pro"]

PAID_STATUSES = frozenset({"active", "trialing"})
# A subscription in one of these will never be charged again: a new one may replace it.
ENDED_STATUSES = frozenset({"canceled", "incomplete_expired"})


@dataclass(frozen=True, slots=True)
class Plan:
    """A plan as GET /billing/plans shows it."""

    id: PlanId
    name: str
    daily_ai_prompts: int
    price: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "daily_ai_prompts": self.daily_ai_prompts,
            "price": self.price,
        }


def catalog(limits: PlanLimits) -> tuple[Plan, Plan]:
    """Both plans, basic first, with the allowance and price the settings give them."""
    return (
        Plan("basic", "Basic", limits.basic_daily_ai_prompts, "free"),
        Plan("pro", "Pro", limits.pro_daily_ai_prompts, limits.pro_price),
    )


def daily_allowance(plan: PlanId, limits: PlanLimits) -> int:
    return limits.pro_daily_ai_prompts if plan == "pro" else limits.basic_daily_ai_prompts


def plan_of_status(status: str) -> PlanId:
    """The plan a status grants before any grace period runs out (past_due counts as pro)."""
    return "pro" if status in PAID_STATUSES or status == "past_due" else "basic"


def effective_plan(
    status: str, status_since: datetime, now: datetime, limits: PlanLimits
) -> PlanId:
    """The plan in force at `now` for a subscription in `status` since `status_since`."""
    if status == "past_due":
        grace = timedelta(days=limits.past_due_grace_days)
        return "pro" if now < status_since + grace else "basic"
    return plan_of_status(status)


def best_plan(plans: Iterable[PlanId]) -> PlanId:
    return "pro" if "pro" in plans else "basic"
