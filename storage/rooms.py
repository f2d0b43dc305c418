"""Rooms of a team: their settings, and the access question every room request starts with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from storage.models import Room, TeamMember
from storage.teams import Role
from storage.timestamps import rfc3339

AssistantMode = Literal["auto", "mention", "off"]
MAX_SYSTEM_PROMPT = 8000


class _Unset:
    """The type of `UNSET`: a setting the caller leaves as it is (None means clear it)."""


UNSET = _Unset()


@dataclass(frozen=True, slots=True)
class RoomRecord:
    id: str
    team_id: str
    name: str
    assistant: AssistantMode
    system_prompt: str | None
    last_seq: int
    created_at: datetime

    @classmethod
    def of(cls, row: Room | Any) -> RoomRecord:  # noqa: ANN401 - an ORM `Room` or a Core row of its columns
        """From a `Room`, or a plain row of the `rooms` columns (both carry the same attributes)."""
        return cls(
            id=row.id,
            team_id=row.team_id,
            name=row.name,
            assistant=cast(AssistantMode, row.assistant),
            system_prompt=row.system_prompt,
            last_seq=row.last_seq,
            created_at=row.created_at,
        )

    def to_json(self) -> dict[str, Any]:
        """docs/protocol.md's `room`, plus its `system_prompt`."""
        return {
            "id": self.id,
            "team_id": self.team_id,
            "name": self.name,
            "assistant": self.assistant,
            "system_prompt": self.system_prompt,
            "last_seq": self.last_seq,
            "created_at": rfc3339(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class RoomAccess:
    """A room and the role the asking user holds in its team."""

    room: RoomRecord
    role: Role


async def create(
    session: AsyncSession,
    *,
    team_id: str,
    name: str,
    assistant: AssistantMode,
    system_prompt: str | None,
    created_by: str,
) -> RoomRecord:
    row = Room(
        team_id=team_id,
        name=name,
        assistant=assistant,
        system_prompt=system_prompt,
        last_seq=0,
        created_by=created_by,
    )
    session.add(row)
    await session.flush()
    return RoomRecord.of(row)


async def get(session: AsyncSession, room_id: str) -> RoomRecord | None:
    row = await session.get(Room, room_id)
    return None if row is None else RoomRecord.of(row)


async def get_many(connection: AsyncConnection, room_ids: Sequence[str]) -> list[RoomRecord]:
    """The rooms of `room_ids` that exist, in one statement (no ORM: plain rows)."""
    if not room_ids:
        return []
    result = await connection.execute(select(*Room.__table__.c).where(Room.id.in_(room_ids)))
    return [RoomRecord.of(row) for row in result]


async def access(session: AsyncSession, room_id: str, user_id: str) -> RoomAccess | None:
    """The room with the user's role in its team; None when either is missing."""
    result = await session.execute(
        select(Room, TeamMember.role)
        .join(TeamMember, TeamMember.team_id == Room.team_id)
        .where(Room.id == room_id, TeamMember.user_id == user_id)
    )
    row = result.one_or_none()
    return None if row is None else RoomAccess(RoomRecord.of(row[0]), cast(Role, row[1]))


_ROOM_COLUMNS = [column for column in Room.__table__.c if column.name in RoomRecord.__slots__]


async def access_now(connection: AsyncConnection, room_id: str, user_id: str) -> RoomAccess | None:
    """`access` in one Core statement on a plain connection: no ORM, no transaction (the
    join's check, on the path of every connection)."""
    result = await connection.execute(
        select(*_ROOM_COLUMNS, TeamMember.role)
        .join(TeamMember, TeamMember.team_id == Room.team_id)
        .where(Room.id == room_id, TeamMember.user_id == user_id)
    )
    row = result.one_or_none()
    return None if row is None else RoomAccess(RoomRecord.of(row), cast(Role, row.role))


async def list_for_team(session: AsyncSession, team_id: str) -> list[RoomRecord]:
    """Every room of the team, oldest first (the cached list pages through these)."""
    rows = await session.scalars(
        select(Room).where(Room.team_id == team_id).order_by(Room.created_at, Room.id)
    )
    return [RoomRecord.of(row) for row in rows]


async def change(
    session: AsyncSession,
    room_id: str,
    *,
    name: str | None = None,
    assistant: AssistantMode | None = None,
    system_prompt: str | None | _Unset = UNSET,
) -> RoomRecord | None:
    """Apply the given settings; None when the room is gone."""
    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = name
    if assistant is not None:
        values["assistant"] = assistant
    if not isinstance(system_prompt, _Unset):
        values["system_prompt"] = system_prompt
    if values:
        await session.execute(
            update(Room)
            .where(Room.id == room_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    row = await session.get(Room, room_id, populate_existing=True)
    return None if row is None else RoomRecord.of(row)


async def delete_room(session: AsyncSession, room_id: str) -> None:
    """Delete the room; its messages go with it (ON DELETE CASCADE)."""
    await session.execute(delete(Room).where(Room.id == room_id))
