"""What billing tells people and other instances, always as background jobs.

Owners are mailed when a payment fails or needs their action; every instance is told on
the bus's `control` topic when a team's plan changes. A webhook answers before these run.
"""

from __future__ import annotations

import logging
from typing import Literal

import aiojobs
import orjson

from server.billing.plans import PlanId
from server.outbox import Outbox
from storage import subscriptions
from storage.bus import Bus
from storage.db import Database

logger = logging.getLogger(__name__)

CONTROL_TOPIC = "control"
PaymentProblem = Literal["failed", "action_required"]

_MAILS: dict[PaymentProblem, tuple[str, str]] = {
    "failed": (
        "Payment failed for {team} on Roomcast",
        "We could not collect the payment for the Pro plan of your team {team}. The team "
        "keeps Pro for {grace} days while Stripe retries; after that it moves to Basic.\n\n"
        "Update the payment method in the billing portal: {link}\n",
    ),
    "action_required": (
        "Action needed to pay for {team} on Roomcast",
        "The payment for the Pro plan of your team {team} needs your confirmation "
        "(for example a bank's security check).\n\nComplete it in the billing portal: {link}\n",
    ),
}


async def announce_plan(bus: Bus, team_id: str, plan: PlanId) -> None:
    """Tell every instance that the team's plan changed."""
    message = {"type": "plan_changed", "team_id": team_id, "plan": plan}
    await bus.publish(CONTROL_TOPIC, orjson.dumps(message))
    logger.info("team %s is now on %s", team_id, plan)


class Notices:
    """Schedules billing's mail and announcements on the app's job scheduler."""

    def __init__(
        self,
        database: Database,
        outbox: Outbox,
        bus: Bus,
        jobs: aiojobs.Scheduler,
        *,
        public_url: str,
        grace_days: int,
    ) -> None:
        self._database = database
        self._outbox = outbox
        self._bus = bus
        self._jobs = jobs
        self._public_url = public_url
        self._grace_days = grace_days

    async def plan_changed(self, team_id: str, plan: PlanId) -> None:
        await self._jobs.spawn(announce_plan(self._bus, team_id, plan), name="plan-changed")

    async def payment_problem(self, team_id: str, problem: PaymentProblem) -> None:
        await self._jobs.spawn(self._mail_owners(team_id, problem), name="billing-mail")

    async def _mail_owners(self, team_id: str, problem: PaymentProblem) -> None:
        async with self._database.sessions() as session:
            contacts = await subscriptions.billing_contacts(session, team_id)
        if contacts is None:
            return  # the team was deleted meanwhile
        subject, body = _MAILS[problem]
        fields = {
            "team": contacts.team_name,
            "grace": str(self._grace_days),
            "link": f"{self._public_url}/teams/{team_id}/billing",
        }
        for email in contacts.emails:
            await self._outbox.send_email(email, subject.format(**fields), body.format(**fields))
        logger.info(
            "team %s: payment %s mailed to %d owners", team_id, problem, len(contacts.emails)
        )
