"""The JSON objects the REST API answers with, as pydantic models (docs/protocol.md's objects).

The records build their own JSON (`to_json`); these models say what that JSON is, for the
OpenAPI document (server/openapi.py) and for the schemathesis run that holds every answer
to them (tests/server/test_schemathesis.py). Unknown fields are refused, so a field added
to a record and not here fails that run instead of going undocumented.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from server.billing.plans import PlanId
from storage.message_records import AuthorKind
from storage.rooms import AssistantMode
from storage.teams import Role


class Shape(BaseModel):
    """Base of answer models: exactly these fields, no others."""

    model_config = ConfigDict(extra="forbid")


class ErrorInfo(Shape):
    code: str = Field(description="A stable machine code, e.g. `invalid` or `not_found`.")
    message: str
    details: dict[str, Any] | None = Field(
        default=None, description="For `invalid`, `fields` names every bad field."
    )


class Error(Shape):
    """Every error, whatever its status: see docs/protocol.md for the codes."""

    error: ErrorInfo


class User(Shape):
    id: str
    email: str | None
    name: str
    role: str
    totp_enabled: bool
    created_at: datetime


class Tokens(Shape):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"]
    expires_in: int = Field(description="Seconds the access token lives.")


class TotpSetup(Shape):
    secret: str
    otpauth_uri: str
    qr_svg: str


class BackupCodes(Shape):
    backup_codes: list[str]


class Team(Shape):
    """A team as one of its members sees it, with that member's `role`."""

    id: str
    name: str
    personal: bool
    role: Role
    created_at: datetime


class MemberUser(Shape):
    id: str
    email: str | None
    name: str


class Member(Shape):
    user: MemberUser
    role: Role
    joined_at: datetime


class Invitation(Shape):
    """A new invitation; its `token` is shown this once."""

    id: str
    team_id: str
    email: str
    role: Role
    token: str
    expires_at: datetime


class Room(Shape):
    id: str
    team_id: str
    name: str
    assistant: AssistantMode
    system_prompt: str | None
    last_seq: int
    created_at: datetime


class Author(Shape):
    id: str | None = Field(description="Null for the assistant.")
    name: str
    kind: AuthorKind


class TokenUsage(Shape):
    input_tokens: int | None
    output_tokens: int | None


class Message(Shape):
    """The websocket `message` event, which is also a history item."""

    type: Literal["message"]
    room: str
    seq: int
    id: str
    client_id: str | None
    author: Author
    body: str
    ts: datetime
    reply_to: int | None = None
    gen: str | None = Field(default=None, description="Assistant answers only, like the rest.")
    model: str | None = None
    finish: str | None = None
    usage: TokenUsage | None = None


_NEXT = "Pass it back as `cursor` for the next page; null on the last page."


class TeamPage(Shape):
    items: list[Team]
    next_cursor: str | None = Field(description=_NEXT)


class MemberPage(Shape):
    items: list[Member]
    next_cursor: str | None = Field(description=_NEXT)


class RoomPage(Shape):
    items: list[Room]
    next_cursor: str | None = Field(description=_NEXT)


class MessagePage(Shape):
    items: list[Message]
    next_cursor: str | None = Field(description=_NEXT)


class Plan(Shape):
    id: PlanId
    name: str
    daily_ai_prompts: int
    price: str


class Plans(RootModel[list[Plan]]):
    pass


class Subscription(Shape):
    plan: PlanId
    status: str
    current_period_end: datetime | None
    cancel_at_period_end: bool
    payments_available: bool = Field(
        description="False when this server has no payment provider: checkout and portal "
        "then answer 503."
    )


class RedirectUrl(Shape):
    url: str = Field(description="Send the browser there.")


class WebhookReceipt(Shape):
    received: Literal[True]
    outcome: str


class Usage(Shape):
    plan: PlanId
    ai_prompts_today: int
    daily_ai_prompts: int
    resets_at: datetime


class ActorNode(Shape):
    name: str
    kind: str
    state: str
    mailbox_depth: int | None = Field(description="Null for a supervisor.")
    mailbox_size: int | None
    restarts: int
    age_seconds: float
    children: list[ActorNode]


class ActorTree(Shape):
    items: list[ActorNode]


class Document(RootModel[dict[str, Any]]):
    """An OpenAPI 3.1 document."""
