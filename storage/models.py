"""SQLAlchemy 2 typed models: the whole schema. Alembic migrations must agree with this file."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.types import UTCDateTime, new_id, utcnow

# Named constraints so migrations (and SQLite batch mode) can refer to them.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(36)
EMAIL = String(320)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), str: String(255)}


class User(Base):
    """An account; `token_version` bumps revoke every token issued before it."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    email: Mapped[str | None] = mapped_column(EMAIL, unique=True)
    phone: Mapped[str | None] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str | None]
    role: Mapped[str] = mapped_column(String(16), default="user")
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    failed_window_start: Mapped[datetime | None]
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RefreshToken(Base):
    """An opaque refresh token, stored as its SHA-256; rotation chains share a `family_id`."""

    __tablename__ = "refresh_tokens"
    # A revoked token of a family is found without reading the family's others, which
    # every access token check on a cache miss does (storage/tokens.py: family_revoked).
    __table_args__ = (Index("ix_refresh_tokens_family_id_revoked_at", "family_id", "revoked_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[str] = mapped_column(ID)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)  # pruning finds the expired
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class BackupCode(Base):
    """A single-use 2FA backup code, stored hashed."""

    __tablename__ = "backup_codes"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None]


class OtpCode(Base):
    """A one-time code for passwordless login or password reset, stored hashed."""

    __tablename__ = "otp_codes"
    __table_args__ = (Index("ix_otp_codes_destination_purpose", "destination", "purpose"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    channel: Mapped[str] = mapped_column(String(8))  # email | sms
    destination: Mapped[str] = mapped_column(EMAIL)
    purpose: Mapped[str] = mapped_column(String(16))  # login | reset
    code_hash: Mapped[str] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    consumed_at: Mapped[datetime | None]


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100))
    personal: Mapped[bool] = mapped_column(Boolean, default=False)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TeamMember(Base):
    __tablename__ = "team_members"

    team_id: Mapped[str] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))  # owner | admin | member
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)


class Invitation(Base):
    __tablename__ = "invitations"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(EMAIL)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    accepted_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Room(Base):
    """A chat room; `last_seq` is taken in the same transaction as each stored message."""

    __tablename__ = "rooms"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    assistant: Mapped[str] = mapped_column(String(8), default="mention")  # auto | mention | off
    system_prompt: Mapped[str | None] = mapped_column(Text)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Message(Base):
    """A stored room event; `seq` is gap-free per room, `client_id` makes sends idempotent."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("room_id", "seq"),
        UniqueConstraint("room_id", "author_id", "client_id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    author_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    author_kind: Mapped[str] = mapped_column(String(16), default="user")  # user | assistant
    author_name: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    client_id: Mapped[str | None] = mapped_column(String(64))
    reply_to: Mapped[int | None] = mapped_column(BigInteger)
    gen_id: Mapped[str | None] = mapped_column(ID)
    finish: Mapped[str | None] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(64))
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Subscription(Base):
    """A team's Stripe subscription as last seen; `stripe_updated` orders competing updates."""

    __tablename__ = "subscriptions"

    team_id: Mapped[str] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64))
    plan: Mapped[str] = mapped_column(String(16), default="basic")
    status: Mapped[str] = mapped_column(String(32), default="active")
    current_period_end: Mapped[datetime | None]
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    stripe_updated: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StripeEvent(Base):
    """A processed webhook event id, so each event is applied once."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]


class UsageCounter(Base):
    """AI prompts per user per UTC day: the durable record beside the quota counter."""

    __tablename__ = "usage_counters"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    ai_prompts: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)


class OutboxMessage(Base):
    """Mail and SMS as sent (development keeps them here to be read)."""

    __tablename__ = "outbox"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    channel: Mapped[str] = mapped_column(String(8))  # email | sms
    destination: Mapped[str] = mapped_column(EMAIL, index=True)
    subject: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
