"""Hostile input on every REST endpoint, on PostgreSQL (which refuses NUL in text).

The table is derived from /api/v1/openapi.json: every string field of every request body
gets NUL, an unpaired surrogate, an overlong value and each wrong JSON type; every body is
also sent malformed; every path parameter gets NUL, a malformed and an overlong id; every
query parameter gets NUL, negatives, huge numbers and non-numbers. Each answer must be the
documented error, the process must keep serving, and a bystander's data must not change.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import re
import time
from dataclasses import dataclass, replace
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from storage.models import Base
from tests.accounts import Account, signup
from tests.server.ws.helpers import connect, join, receive

API = "/api/v1"
WEBHOOK = f"{API}/webhooks/stripe"
WEBHOOK_SECRET = "whsec_hostile"
# Past the 1 MiB limit of every endpoint (and the webhooks' 512 KiB).
OVERSIZED = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'


@dataclass(frozen=True, slots=True)
class Row:
    """One hostile request and its documented answer: status, code, the field it names."""

    label: str
    method: str
    path: str
    status: int
    code: str
    field: str | None = None
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class StringField:
    """A string-typed property of a request body, as the document states it."""

    name: str
    max_length: int | None
    nullable: bool


@pytest.fixture
def settings(settings: Any) -> Any:
    """Rate limits out of the way (the barrage posts to each /auth/* endpoint dozens of
    times), and Stripe configured, so the webhook checks its signature instead of 503."""
    return replace(
        settings,
        auth_rate_limit=100_000,
        stripe_secret_key="sk_test_hostile",
        stripe_api_base="http://127.0.0.1:9",  # never asked: no hostile event gets that far
        stripe_webhook_secret=WEBHOOK_SECRET,
    )


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    return resolve(document, document["components"]["schemas"][ref.rsplit("/", 1)[-1]])


def string_fields(document: dict[str, Any], body: dict[str, Any]) -> list[StringField]:
    """The fields of a request body schema that take a string (possibly among null)."""
    found = []
    for name, prop in resolve(document, body).get("properties", {}).items():
        branches = [resolve(document, b) for b in prop.get("anyOf", [prop])]
        strings = [b for b in branches if b.get("type") == "string"]
        if strings:
            nullable = any(b.get("type") == "null" for b in branches)
            found.append(StringField(name, strings[0].get("maxLength"), nullable))
    return found


def with_ids(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


def signed(payload: bytes) -> tuple[tuple[str, str], ...]:
    """A valid `Stripe-Signature` for `payload`: hostile events that Stripe itself signed."""
    stamp = int(time.time())
    mac = hmac.new(WEBHOOK_SECRET.encode(), b"%d.%s" % (stamp, payload), hashlib.sha256)
    return (("Stripe-Signature", f"t={stamp},v1={mac.hexdigest()}"),)


# orjson cannot write an unpaired surrogate; this stands in for one in the bytes it writes.
_LONE = "<lone surrogate>"
# A Stripe event but for the field under attack, signed: what only Stripe could send.
_EVENT = {"id": "evt_hostile", "type": "ping", "created": 1, "data": {"object": {}}}


def field_rows(method: str, path: str, field: StringField, webhook: bool) -> list[Row]:
    """`field` holding each hostile value: 400 naming the field."""
    values: dict[str, Any] = {
        "NUL": "a\u0000b",
        "lone surrogate": _LONE,
        "overlong": "x" * ((field.max_length or 10_000) + 1),
        "number": 5,
        "list": ["x"],
        "object": {"x": "a\u0000b"},
    }
    if not field.nullable:
        values["null"] = None
    rows = []
    for kind, value in values.items():
        body = orjson.dumps({**(_EVENT if webhook else {}), field.name: value})
        body = body.replace(orjson.dumps(_LONE), b'"cut \\ud800"')
        headers = signed(body) if webhook else ()
        label = f"{method} {path} {field.name} {kind}"
        rows.append(Row(label, method, path, 400, "invalid", field.name, body, headers))
    return rows


def malformed_body_rows(method: str, path: str, webhook: bool) -> list[Row]:
    """The whole body malformed: 400 `invalid` (413 past the limit)."""
    bodies = {
        "not JSON": b'{"name": ',
        "an array": b'["name"]',
        "invalid UTF-8": b'{"name": "\xff\xfe"}',
        "a UTF-8 surrogate": b'{"name": "\xed\xa0\x80"}',
        "NaN": b'{"name": NaN}',
    }
    rows = [
        Row(
            f"{method} {path} body {kind}",
            method,
            path,
            400,
            "invalid",
            body=body,
            headers=signed(body) if webhook else (),
        )
        for kind, body in bodies.items()
    ]
    label = f"{method} {path} body oversized"
    rows.append(Row(label, method, path, 413, "too_large", None, OVERSIZED))
    return rows


# Path parameters: percent-encoded as a client would send them; each names nothing.
BAD_IDS = {
    "NUL": "a%00b",
    "NUL in an id": "00000000-0000-4000-8000-%0000000000000",
    "malformed": "not-an-id",
    "upper case": "0000000A-0000-4000-8000-000000000000",
    "overlong": "a" * 2000,
    "invalid UTF-8": "%FF%FE",
    "encoded surrogate": "%ED%A0%80",
}
# Query parameters: the raw text after `name=`.
BAD_QUERY = {
    "NUL": "1%000",
    "negative": "-1",
    "huge": "9" * 40,
    "not a number": "ten",
    "fraction": "1.5",
    "exponent": "1e3",
    "empty-ish": "%20",
}


def pack(*key: Any) -> str:
    """A cursor as the lists write them: base64url of a JSON list of strings."""
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


# Cursors shaped like ours (base64 of a JSON list) carrying what no list hands out.
FORGED_CURSORS = {
    "forged NUL": pack("2026-01-01T00:00:00+00:00", "a\u0000b"),
    "forged NUL first": pack("back\u0000", "1", ""),
    "forged surrogate": base64.urlsafe_b64encode(b'["2026-01-01T00:00:00+00:00", "\\ud800"]')
    .decode()
    .rstrip("="),
    "forged number": pack(1, 2),
    "forged empty list": pack(),
}


def table(document: dict[str, Any], ids: dict[str, str]) -> list[Row]:
    """Every hostile row for every operation of the document."""
    rows: list[Row] = []
    for template, item in document["paths"].items():
        for method, operation in item.items():
            path = with_ids(template, ids)
            webhook = template == WEBHOOK
            method = method.upper()
            body = operation.get("requestBody")
            if body is not None:
                schema = body["content"]["application/json"]["schema"]
                for field in string_fields(document, schema):
                    rows += field_rows(method, path, field, webhook)
                rows += malformed_body_rows(method, path, webhook)
            for param in operation.get("parameters", []):
                if param["in"] == "path":
                    for kind, bad in BAD_IDS.items():
                        bad_path = with_ids(template, {**ids, param["name"]: bad})
                        label = f"{method} {template} {param['name']} {kind}"
                        empty = b"{}" if body is not None else None
                        rows.append(Row(label, method, bad_path, 404, "not_found", None, empty))
                elif param["in"] == "query":
                    name = param["name"]
                    values = dict(BAD_QUERY)
                    if name == "cursor":
                        values.update(FORGED_CURSORS)
                    for kind, bad in values.items():
                        label = f"{method} {template} ?{name} {kind}"
                        query = f"{path}?{name}={bad}"
                        rows.append(Row(label, method, query, 400, "invalid", name))
    return rows


async def send(client: Any, account: Account, row: Row) -> tuple[Row, int, dict[str, Any]]:
    headers = {**account.headers, "Content-Type": "application/json", **dict(row.headers)}
    data = None if row.body is None else io.BytesIO(row.body)  # a MiB at once would block
    response = await client.request(row.method, row.path, data=data, headers=headers)
    raw = await response.read()
    return row, response.status, orjson.loads(raw) if raw else {}


def mismatch(row: Row, status: int, answer: dict[str, Any]) -> str | None:
    """Why the answer is not the documented one, or None."""
    error = answer.get("error", {})
    if (status, error.get("code")) != (row.status, row.code):
        return f"{row.label}: {status} {answer}"
    if row.field is not None and row.field not in error.get("details", {}).get("fields", {}):
        return f"{row.label}: does not name {row.field}: {answer}"
    return None


async def bystander(client: Any) -> tuple[Account, dict[str, Any]]:
    """Bob, with a team, a room and three messages in it, before anyone attacks."""
    bob = await signup(client, name="Bob Bystander")
    made = await client.post(f"{API}/teams", json={"name": "Bob's"}, headers=bob.headers)
    team_id = (await made.json())["id"]
    made = await client.post(
        f"{API}/teams/{team_id}/rooms",
        json={"name": "den", "system_prompt": "be brief"},
        headers=bob.headers,
    )
    room_id = (await made.json())["id"]
    ws = await connect(client, bob)
    await join(ws, room_id)
    for i in range(3):
        await ws.send_json({"type": "send", "room": room_id, "body": f"mine {i}", "id": i})
        await receive(ws, "ack")
    await ws.close()
    return bob, {"team": team_id, "room": room_id}


async def view(client: Any, account: Account, made: dict[str, str]) -> list[Any]:
    """Everything Bob sees of his own things."""
    paths = [
        "/me",
        "/teams",
        f"/teams/{made['team']}",
        f"/teams/{made['team']}/members",
        f"/teams/{made['team']}/rooms",
        f"/rooms/{made['room']}",
        f"/rooms/{made['room']}/messages",
    ]
    seen = []
    for path in paths:
        response = await client.get(API + path, headers=account.headers)
        assert response.status == 200, (path, await response.text())
        seen.append(await response.json())
    return seen


async def row_counts(database: Any) -> dict[str, int]:
    async with database.sessions() as session:
        return {
            table.name: await session.scalar(select(func.count()).select_from(table))
            for table in Base.metadata.sorted_tables
        }


async def test_every_rest_endpoint_answers_hostile_input_as_documented_and_harms_nobody(
    client, database
):
    bob, bobs = await bystander(client)
    alice = await signup(client, name="Alice Attacker")
    made = await client.post(f"{API}/teams", json={"name": "Alice's"}, headers=alice.headers)
    team_id = (await made.json())["id"]
    made = await client.post(
        f"{API}/teams/{team_id}/rooms", json={"name": "lair"}, headers=alice.headers
    )
    ids = {
        "team_id": team_id,
        "room_id": (await made.json())["id"],
        "user_id": alice.id,
        "token": "no-such-invitation",
    }
    document = await (await client.get(f"{API}/openapi.json")).json()
    rows = table(document, ids)
    operations = [method for item in document["paths"].values() for method in item]
    assert len(operations) > 30 and len(rows) > 500, (len(operations), len(rows))
    before, counts = await view(client, bob, bobs), await row_counts(database)

    gate = asyncio.Semaphore(16)

    async def one(row: Row) -> tuple[Row, int, dict[str, Any]]:
        async with gate:
            return await send(client, alice, row)

    # Were one of these served, it would sign Alice out: then nothing after it could tell.
    revoking = ("/auth/logout", "/auth/password/")
    last = [row for row in rows if row.path.startswith(tuple(API + p for p in revoking))]
    answers = await asyncio.gather(*(one(row) for row in rows if row not in last))
    answers += await asyncio.gather(*(one(row) for row in last))
    wrong = [m for m in (mismatch(*answer) for answer in answers) if m is not None]
    assert wrong == [], "\n".join(wrong)

    assert (await client.get("/health")).status == 200
    assert await view(client, bob, bobs) == before
    assert await row_counts(database) == counts


async def test_a_forged_cursor_at_the_edge_of_time_is_invalid_on_the_lists_kept_by_time(client):
    alice = await signup(client)
    teams = await (await client.get(f"{API}/teams", headers=alice.headers)).json()
    personal = teams["items"][0]["id"]
    for moment in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-01-01"):
        cursor = pack(moment, alice.id)
        for path in ("/teams", f"/teams/{personal}/members"):
            response = await client.get(f"{API}{path}?cursor={cursor}", headers=alice.headers)
            answer = await response.json()
            assert (response.status, answer["error"]["code"]) == (400, "invalid"), (path, moment)
            assert answer["error"]["details"]["fields"] == {"cursor": "invalid cursor"}
    assert (await client.get("/health")).status == 200
