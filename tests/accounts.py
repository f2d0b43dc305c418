"""Test accounts made through the public API: register, then log in."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

DEFAULT_PASSWORD = "Correct-horse-battery-9"

_serial = itertools.count(1)


@dataclass(frozen=True)
class Account:
    """A registered, logged-in user and the tokens of their session."""

    id: str
    email: str
    name: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{next(_serial)}-{uuid.uuid4().hex[:8]}@example.com"


async def signup(
    client: Any,
    *,
    email: str | None = None,
    name: str | None = None,
    password: str = DEFAULT_PASSWORD,
) -> Account:
    """Register through POST /api/v1/auth/register and log in through /auth/login."""
    email = email or unique_email()
    name = name or email.split("@")[0]
    registered = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "name": name}
    )
    assert registered.status == 201, await registered.text()
    user = await registered.json()
    logged_in = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert logged_in.status == 200, await logged_in.text()
    tokens = await logged_in.json()
    return Account(
        id=user["id"],
        email=user["email"],
        name=user["name"],
        password=password,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
    )


class ActsAs:
    """Calls the API as one of a scenario's named accounts (`who`), or as nobody."""

    client: Any

    def headers(self, who: str) -> dict[str, str]:
        return {} if who == "anonymous" else getattr(self, who).headers

    async def call(self, method: str, path: str, who: str = "owner", **kwargs: Any) -> Any:
        """The response to `method /api/v1+path` as `who`."""
        return await self.client.request(
            method, "/api/v1" + path, headers=self.headers(who), **kwargs
        )


async def four_roles(client: Any, database: Any) -> tuple[Account, Account, Account, Account, str]:
    """An owner, an admin, a member of a new team "Crew", an outsider, and the team's id."""
    from storage import teams

    owner = await signup(client, name="Olive Owner")
    admin = await signup(client, name="Adam Admin")
    member = await signup(client, name="Mia Member")
    outsider = await signup(client, name="Otto Outsider")
    made = await client.post("/api/v1/teams", json={"name": "Crew"}, headers=owner.headers)
    assert made.status == 201
    team_id = (await made.json())["id"]
    async with database.sessions.begin() as session:
        await teams.add_member(session, team_id, admin.id, "admin")
        await teams.add_member(session, team_id, member.id, "member")
    return owner, admin, member, outsider, team_id
