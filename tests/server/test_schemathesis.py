"""Schemathesis against the running app: generated requests, every answer as documented.

Each operation of /api/v1/openapi.json gets examples valid by its schema (positive) and
invalid ones (negative), once with the ids of a real team and room and once with
generated ones. Every answer is held to the checks below; the run collects every failure
and the test lists them all. The app serves on a port in the test's event loop while
schemathesis, which is synchronous, sends its requests from a worker thread.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.accounts import signup

EXAMPLES = 5  # per operation, mode and set of ids

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
]
# Stripe is not configured here, so checkout, portal and the webhook answer 503 `unavailable`
# (documented for them only, which status_code_conformance holds every other operation to);
# 423 is a locked account. Neither says the request was malformed.
CONFIG = {
    # The test sends the access token itself; unknown query parameters are ignored, as HTTP
    # servers do, so neither a missing token nor an extra parameter is a negative case here.
    "generation": {"with-security-parameters": False, "allow-extra-parameters": False},
    "checks": {
        "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]},
        "positive_data_acceptance": {
            "expected-statuses": ["2xx", "401", "403", "404", "409", "423", "429", "503"]
        },
        "negative_data_rejection": {
            "expected-statuses": ["400", "401", "403", "404", "405", "409", "413", "429", "503"]
        },
    },
}
# A valid-looking request still answers 400 here when the schema cannot tell it is wrong:
# a cursor is opaque (only one the list handed out decodes), a code or a password is
# checked against what the server holds, and the password policy (two character classes,
# not a common password) has no JSON Schema. The other checks still run on these.
STATEFUL_400 = {
    "GET /api/v1/teams",
    "GET /api/v1/teams/{team_id}/members",
    "GET /api/v1/teams/{team_id}/rooms",
    "GET /api/v1/rooms/{room_id}/messages",
    "POST /api/v1/auth/register",
    "POST /api/v1/auth/password/reset",
    "POST /api/v1/auth/password/change",
    "POST /api/v1/auth/2fa/enable",
    "POST /api/v1/auth/2fa/disable",
    "POST /api/v1/webhooks/stripe",
}
# They revoke the token the run uses, or delete the room and team it uses: last.
LAST = (
    "DELETE /api/v1/rooms/{room_id}",
    "POST /api/v1/auth/logout",
    "POST /api/v1/auth/logout-all",
)


@dataclass
class Run:
    """What the run sent and what failed, one line per distinct failure."""

    base_url: str
    headers: dict[str, str]
    ids: dict[str, str]
    session: requests.Session = field(default_factory=requests.Session)
    examples: int = 0
    operations: int = 0
    failures: dict[str, str] = field(default_factory=dict)


def _order(label: str) -> tuple[int, str]:
    return (LAST.index(label) + 1 if label in LAST else 0, label)


def _exercise(run: Run, operation: Any, mode: GenerationMode, real_ids: bool) -> None:
    names = {p["name"] for p in operation.definition.raw.get("parameters", [])}
    fixed = {k: v for k, v in run.ids.items() if k in names} if real_ids else None
    if real_ids and not fixed:
        return
    excluded = [positive_data_acceptance] if operation.label in STATEFUL_400 else []

    strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)

    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def examples(case: Any) -> None:
        run.examples += 1
        try:
            case.call_and_validate(
                base_url=run.base_url,
                session=run.session,
                headers=run.headers,
                checks=CHECKS,
                excluded_checks=excluded,
                timeout=30,
            )
        except (Exception, BaseExceptionGroup) as exc:  # collected, all reported together
            title = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            run.failures.setdefault(f"{operation.label} [{mode.value}]: {title}", str(exc))

    try:
        examples()
    except Unsatisfiable:  # nothing of it can be made invalid (no body, ids fixed): fine
        assert mode is GenerationMode.NEGATIVE


def _run(document: dict[str, Any], run: Run) -> None:
    config = schemathesis.Config.from_dict(CONFIG)
    schema = schemathesis.openapi.from_dict(document, config=config)
    operations = sorted(
        (found.ok() for found in schema.get_all_operations()), key=lambda op: _order(op.label)
    )
    run.operations = len(operations)
    for operation in operations:
        for real_ids in (True, False):
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _exercise(run, operation, mode, real_ids)


@pytest.mark.timeout(240)
async def test_generated_requests_get_documented_answers_and_never_a_server_error(
    make_client,
) -> None:
    client = await make_client(auth_rate_limit=1_000_000)
    account = await signup(client)
    headers = {"Authorization": f"Bearer {account.access_token}"}
    team = (await (await client.get("/api/v1/teams", headers=headers)).json())["items"][0]
    room = await client.post(
        f"/api/v1/teams/{team['id']}/rooms", json={"name": "lobby"}, headers=headers
    )
    assert room.status == 201
    document = await (await client.get("/api/v1/openapi.json")).json()
    run = Run(
        base_url=str(client.make_url("")).rstrip("/"),
        headers=headers,
        ids={"team_id": team["id"], "room_id": (await room.json())["id"], "user_id": account.id},
    )
    try:
        await asyncio.to_thread(_run, document, run)
    finally:
        run.session.close()
    report = "\n\n".join(run.failures.values())
    assert not run.failures, (
        f"{len(run.failures)} failures:\n" + "\n".join(run.failures) + "\n\n" + report
    )
    assert run.operations == len([op for item in document["paths"].values() for op in item])
    assert run.examples > run.operations * EXAMPLES
