"""Hostile input on every team and room endpoint: the documented error, nothing stored, still up."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.server.teams.conftest import Crew, error_code, row_counts

HUGE = "x" * 900_000
BAD_NAMES = ["", "   ", "x" * 101, "a\x00b", "evil\u202egnp.exe", "two\nlines", HUGE, 5, ["a"]]
BAD_VALUES = {
    "name": BAD_NAMES + [{"$gt": ""}, True],
    "role": ["superuser", "Owner", "", 1, "member' OR '1'='1", HUGE],
    "email": ["not an email", "a@", "x" * 400 + "@example.com", 5, "a\x00@example.com", HUGE],
    "assistant": ["always", "AUTO", 1, ""],
    "system_prompt": ["nul \x00 inside", "x" * 8001, 42],
}

# method, path, the fields it takes, and a valid body to send the bad values in.
BODY_ENDPOINTS = [
    ("POST", "/teams", {"name": "Valid"}),
    ("PATCH", "/teams/{team}", {"name": "Valid"}),
    ("PATCH", "/teams/{team}/members/{member}", {"role": "admin"}),
    ("POST", "/teams/{team}/invitations", {"email": "valid@example.com", "role": "member"}),
    ("POST", "/teams/{team}/rooms", {"name": "Valid", "assistant": "off", "system_prompt": "Hi"}),
    ("PATCH", "/rooms/{room}", {"name": "Valid", "assistant": "off", "system_prompt": "Hi"}),
]
MALFORMED = [b"not json", b"{'name': 'x'}", b"[1, 2]", b'"a string"', b"null", b"", b"\xff\xfe"]


def _path(crew: Crew, template: str) -> str:
    return template.format(team=crew.team_id, room=crew.room_id, member=crew.member.id)


async def _snapshot(crew: Crew) -> tuple[dict[str, int], list, dict]:
    teams = await (await crew.call("GET", "/teams")).json()
    room = await (await crew.call("GET", f"/rooms/{crew.room_id}")).json()
    return await row_counts(crew.database), teams["items"], room


@pytest.mark.parametrize(
    ("method", "template", "valid"), BODY_ENDPOINTS, ids=[f"{m} {t}" for m, t, _ in BODY_ENDPOINTS]
)
async def test_bad_bodies_are_invalid_and_store_nothing(
    crew: Crew, method, template, valid
) -> None:
    path = _path(crew, template)
    before = await _snapshot(crew)
    for raw in MALFORMED:
        response = await crew.call(method, path, data=raw)
        assert (response.status, await error_code(response)) == (400, "invalid"), raw
    for extra in ({**valid, "owner_id": crew.owner.id}, {**valid, "id": "x", "team_id": "y"}):
        response = await crew.call(method, path, json=extra)
        assert (response.status, await error_code(response)) == (400, "invalid"), extra
    for field in valid:
        for value in BAD_VALUES[field]:
            response = await crew.call(method, path, json={**valid, field: value})
            assert response.status == 400, (field, repr(value)[:40])
            error = (await response.json())["error"]
            assert error["code"] == "invalid"
            assert any(name.startswith(field) for name in error["details"]["fields"]), error
    assert await _snapshot(crew) == before
    assert (await crew.client.get("/health")).status == 200


async def test_required_fields_are_named_when_missing(crew: Crew) -> None:
    for method, template, field in (
        ("POST", "/teams", "name"),
        ("PATCH", "/teams/{team}/members/{member}", "role"),
        ("POST", "/teams/{team}/invitations", "email"),
        ("POST", "/teams/{team}/rooms", "name"),
    ):
        response = await crew.call(method, _path(crew, template), json={})
        assert response.status == 400
        assert field in (await response.json())["error"]["details"]["fields"]


@pytest.mark.parametrize(
    "name",
    [
        "Robert'); DROP TABLE teams;--",
        "1 OR 1=1",
        "%s %(name)s {0} ${x}",
        "<script>alert(1)</script>",
        "שלום עולם",
        "مرحبا",
        "🚀 launch 👩‍💻",
        "x" * 100,
    ],
)
async def test_odd_but_valid_names_are_stored_verbatim(crew: Crew, name) -> None:
    team = await crew.call("POST", "/teams", json={"name": name})
    room = await crew.call("POST", f"/teams/{crew.team_id}/rooms", json={"name": name})
    assert (team.status, room.status) == (201, 201)
    team_id, room_id = (await team.json())["id"], (await room.json())["id"]
    assert (await (await crew.call("GET", f"/teams/{team_id}")).json())["name"] == name
    assert (await (await crew.call("GET", f"/rooms/{room_id}")).json())["name"] == name


GARBAGE_IDS = [
    "x",
    "1",
    "' OR '1'='1",
    "1; DROP TABLE teams",
    "\x00",
    "..",
    "%",
    "ä" * 40,
    "a" * 3000,
    "00000000-0000-0000-0000-000000000000",
]
# Each with a valid body, so that the id is all that is wrong.
ID_PATHS = [
    ("GET", "/teams/{id}", None),
    ("PATCH", "/teams/{id}", {"name": "n"}),
    ("DELETE", "/teams/{id}", None),
    ("GET", "/teams/{id}/members", None),
    ("PATCH", "/teams/{team}/members/{id}", {"role": "admin"}),
    ("DELETE", "/teams/{team}/members/{id}", None),
    ("POST", "/teams/{id}/invitations", {"email": "someone@example.com"}),
    ("GET", "/teams/{id}/rooms", None),
    ("POST", "/teams/{id}/rooms", {"name": "n"}),
    ("GET", "/rooms/{id}", None),
    ("PATCH", "/rooms/{id}", {"name": "n"}),
    ("DELETE", "/rooms/{id}", None),
    ("GET", "/rooms/{id}/messages", None),
    ("POST", "/invitations/{id}/accept", None),
]


async def test_garbage_ids_in_paths_are_not_found(crew: Crew) -> None:
    before = await _snapshot(crew)
    variants = [*GARBAGE_IDS, crew.team_id.upper(), crew.room_id + "x", " " + crew.room_id]
    for method, template, body in ID_PATHS:
        for raw in variants:
            path = template.format(id=quote(raw, safe=""), team=crew.team_id)
            response = await crew.call(method, path, json=body)
            assert response.status == 404, (method, template, raw[:20], await response.text())
            assert await error_code(response) == "not_found"
    assert await _snapshot(crew) == before
    assert (await crew.client.get("/health")).status == 200
