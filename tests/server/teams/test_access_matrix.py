"""Every team and room endpoint, called as owner, admin, member, outsider and anonymous.

An outsider (a member of other teams only) gets 404 wherever a member would see the team
or room; anonymous callers get 401; a member without the role gets 403.
"""

from __future__ import annotations

import itertools

import pytest

from tests.server.teams.conftest import CALLERS, Crew, error_code

_emails = itertools.count(1)

# method, path, body, and the statuses of owner, admin, member, outsider, anonymous.
# In a path, {team}, {room} and {user} are the crew's; {new_team}, {new_room} and
# {new_user} are made afresh for each caller, for calls that use them up.
ENDPOINTS = [
    ("GET", "/teams", None, (200, 200, 200, 200, 401)),
    ("POST", "/teams", {"name": "New"}, (201, 201, 201, 201, 401)),
    ("GET", "/teams/{team}", None, (200, 200, 200, 404, 401)),
    ("PATCH", "/teams/{team}", {"name": "Renamed"}, (200, 200, 403, 404, 401)),
    ("DELETE", "/teams/{new_team}", None, (204, 403, 403, 404, 401)),
    ("GET", "/teams/{team}/members", None, (200, 200, 200, 404, 401)),
    ("PATCH", "/teams/{team}/members/{new_user}", {"role": "admin"}, (200, 200, 403, 404, 401)),
    ("DELETE", "/teams/{team}/members/{new_user}", None, (204, 204, 403, 404, 401)),
    ("POST", "/teams/{team}/invitations", "invitation", (201, 201, 403, 404, 401)),
    ("GET", "/teams/{team}/rooms", None, (200, 200, 200, 404, 401)),
    ("POST", "/teams/{team}/rooms", {"name": "new room"}, (201, 201, 201, 404, 401)),
    ("GET", "/rooms/{room}", None, (200, 200, 200, 404, 401)),
    ("PATCH", "/rooms/{room}", {"assistant": "off"}, (200, 200, 403, 404, 401)),
    ("DELETE", "/rooms/{new_room}", None, (204, 204, 403, 404, 401)),
    ("GET", "/rooms/{room}/messages", None, (200, 200, 200, 404, 401)),
]

_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found"}


async def _path(crew: Crew, template: str) -> str:
    values = {"team": crew.team_id, "room": crew.room_id}
    if "{new_team}" in template:
        values["new_team"] = await crew.new_team()
    if "{new_room}" in template:
        values["new_room"] = await crew.new_room()
    if "{new_user}" in template:
        values["new_user"] = await crew.new_member()
    return template.format(**values)


def _body(body):
    if body == "invitation":
        return {"email": f"invitee-{next(_emails)}@example.com", "role": "member"}
    return body


@pytest.mark.parametrize(
    ("method", "template", "body", "statuses"),
    ENDPOINTS,
    ids=[f"{method} {template}" for method, template, _, _ in ENDPOINTS],
)
async def test_each_caller_gets_the_status_of_their_role(
    crew: Crew, method, template, body, statuses
) -> None:
    seen = {}
    for who in CALLERS:
        path = await _path(crew, template)
        response = await crew.call(method, path, who, json=_body(body))
        seen[who] = response.status
        if response.status in _CODES:
            assert await error_code(response) == _CODES[response.status], (who, path)
    assert seen == dict(zip(CALLERS, statuses, strict=True))


async def test_an_invitation_is_accepted_only_by_its_signed_in_invitee(crew: Crew) -> None:
    made = await crew.call(
        "POST", f"/teams/{crew.team_id}/invitations", json={"email": crew.outsider.email}
    )
    token = (await made.json())["token"]
    seen = {}
    for who in ("anonymous", "owner", "admin", "member", "outsider"):
        response = await crew.call("POST", f"/invitations/{token}/accept", who)
        seen[who] = response.status
    # The crew is in the team already, but the invitation is not theirs: not found.
    assert seen == {"anonymous": 401, "owner": 404, "admin": 404, "member": 404, "outsider": 200}
