"""AI prompts per user per UTC day in `usage_counters`: the durable side of the quota.

The quota counts on the key-value store (fast, shared); these rows are written behind it
in batches, so that a restart of a single instance (whose in-memory counters are lost)
does not hand out the day's allowance a second time.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import date

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import UsageCounter, User


async def prompts_on(session: AsyncSession, user_id: str, day: date) -> int:
    """The prompts recorded for the user on `day` (0 when none)."""
    found = await session.scalar(
        select(UsageCounter.ai_prompts).where(
            UsageCounter.user_id == user_id, UsageCounter.day == day
        )
    )
    return found or 0


async def prompts_of_users_on(
    session: AsyncSession, user_ids: Collection[str], day: date
) -> dict[str, int]:
    """`prompts_on` for many users, in one statement; those with none are left out."""
    result = await session.execute(
        select(UsageCounter.user_id, UsageCounter.ai_prompts).where(
            UsageCounter.user_id.in_(user_ids), UsageCounter.day == day
        )
    )
    return {user_id: count for user_id, count in result if count}


async def add_prompts(session: AsyncSession, counts: Mapping[tuple[str, date], int]) -> None:
    """Add each `(user_id, day)`'s count to its row, made if missing; in one statement.

    A user deleted meanwhile has no row to count against: their counts are dropped.
    """
    ids = {user_id for user_id, _day in counts}
    existing = set(await session.scalars(select(User.id).where(User.id.in_(ids))))
    rows = [
        {"user_id": user_id, "day": day, "ai_prompts": n}
        for (user_id, day), n in sorted(counts.items())  # one lock order for every writer
        if user_id in existing
    ]
    if not rows:
        return
    statement = insert(UsageCounter).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=[UsageCounter.user_id, UsageCounter.day],
        set_={"ai_prompts": UsageCounter.ai_prompts + statement.excluded.ai_prompts},
    )
    await session.execute(statement)
