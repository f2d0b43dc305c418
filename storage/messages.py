"""Stored room messages: appended with the room's next gap-free `seq`, read back in pages.

The REST history endpoint and the realtime layer share these functions. Appending follows
docs/architecture.md's "Order and durability": the room row's `last_seq` is advanced by
`UPDATE rooms SET last_seq = last_seq + n ... RETURNING last_seq` in the caller's
transaction, which also locks the row until commit, so concurrent writers to one room
queue behind each other and `seq` stays gap-free and strictly increasing, on PostgreSQL
(row lock) and SQLite (database write lock) alike. A send retried with the same
`(room, author, client_id)` stores nothing and consumes no `seq`; it is answered with the
message stored first.

Transaction boundaries belong to the caller: nothing here commits. The caller acks only
after its commit. Several appends, to several rooms, may share one transaction (group
commit) through `append_many`, which locks rooms in id order so two batches never
deadlock. Sessions must run at READ COMMITTED (PostgreSQL's default) or on SQLite.

On PostgreSQL the realtime committer first tries `append_at_once`: the same locks, in
the same order, and the same numbering, as one statement that is atomic without a
transaction (one round trip per commit). A retried send or a missing room makes it
decline, and the batch then goes through `append_many`. The records themselves are in
`storage.message_records`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Table, insert, select, text, update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from errors import Invalid, NotFound
from storage.message_records import (
    Appended,
    Author,
    AuthorKind,
    Generation,
    MessagePage,
    NewMessage,
    StoredMessage,
)
from storage.models import Message, Room
from storage.types import new_id, unstorable, utcnow

__all__ = [
    "MAX_AUTHOR_NAME",
    "MAX_CLIENT_ID",
    "Appended",
    "Author",
    "AuthorKind",
    "Generation",
    "MessagePage",
    "NewMessage",
    "StoredMessage",
    "append_at_once",
    "append_many",
    "page",
    "refused_value",
]

MAX_CLIENT_ID = 64
MAX_AUTHOR_NAME = 100

# Core tables: the write path skips the ORM's unit of work (it costs more than the SQL).
MESSAGES: Table = Message.__table__  # type: ignore[assignment]
ROOMS: Table = Room.__table__  # type: ignore[assignment]

#: An ORM session (REST handlers) or a plain connection (the realtime committer).
Executor = AsyncSession | AsyncConnection

# (author id, client id): what makes a send idempotent within a room.
_Key = tuple[str, str]


async def append_many(session: Executor, posts: Sequence[NewMessage]) -> list[Appended]:
    """Store a batch in the caller's transaction; results in the order of `posts`.

    Messages to one room get consecutive `seq`s in batch order. A post repeating a
    `(room, author, client_id)` already stored, or earlier in the batch, is a duplicate.

    Raises:
        NotFound: a room does not exist (nothing of the batch should then be committed).
        Invalid: a `client_id` is too long or a string holds a NUL, or the database refused
            a value of some message (see `REFUSED`); the batch holds at least one message
            it will never take, and the transaction should be rolled back.
    """
    for post in posts:
        _validate(post)
    by_room: dict[str, list[int]] = {}
    for index, post in enumerate(posts):
        by_room.setdefault(post.room_id, []).append(index)
    results: dict[int, Appended] = {}
    try:
        for room_id in sorted(by_room):  # one lock order for every writer
            indexes = by_room[room_id]
            stored = await _append_to_room(session, room_id, [posts[i] for i in indexes])
            results.update(zip(indexes, stored, strict=True))
    except (DBAPIError, ValueError, OverflowError) as exc:
        if not refused_value(exc):
            raise
        raise Invalid(REFUSED) from exc
    return [results[index] for index in range(len(posts))]


#: What a message the database refused is answered (no SQL, no driver text: see the log).
REFUSED = "message: the database cannot store a value of it"


def refused_value(exc: BaseException) -> bool:
    """Whether `exc` is the database, or its driver, refusing a value of a row: the fault of
    a message, which fails the same way however often it is retried. Anything else (the
    database unreachable, a timeout) is not the message's fault.
    """
    if isinstance(exc, IntegrityError | DataError):
        return True
    # asyncpg's own error is the cause of SQLAlchemy's: PostgreSQL names a data exception
    # (SQLSTATE class 22: NUL in text, a value out of range) or a constraint (23); a value
    # the driver could not even encode is a ValueError (a lone surrogate, an int past 64
    # bits), on SQLite an OverflowError.
    cause = exc.__cause__ if isinstance(exc, DBAPIError) and exc.__cause__ else exc
    sqlstate = getattr(cause, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate[:2] in ("22", "23")
    return isinstance(cause, ValueError | OverflowError)


# PostgreSQL only: a whole batch, for any number of rooms, in one statement (one round
# trip). The rooms are locked in id order (the order every writer uses) and their locked
# `last_seq`s number the rows; a room that does not exist leaves `seq` NULL, and a
# retried `client_id` hits the unique constraint, so either aborts the whole statement.
_AT_ONCE = text(
    """
WITH locked AS (
    SELECT id, last_seq FROM rooms
    WHERE id = ANY(CAST(:room_ids AS varchar[])) ORDER BY id FOR UPDATE
), moved AS (
    UPDATE rooms SET last_seq = locked.last_seq + counts.n
    FROM locked
    JOIN unnest(CAST(:room_ids AS varchar[]), CAST(:counts AS bigint[])) AS counts(id, n)
        ON counts.id = locked.id
    WHERE rooms.id = locked.id
    RETURNING rooms.id
)
INSERT INTO messages (id, room_id, seq, author_id, author_kind, author_name, body,
    client_id, reply_to, gen_id, finish, model, input_tokens, output_tokens, created_at)
SELECT p.id, p.room_id, locked.last_seq + p.n, p.author_id, p.author_kind, p.author_name,
    p.body, p.client_id, p.reply_to, p.gen_id, p.finish, p.model, p.input_tokens,
    p.output_tokens, p.created_at
FROM unnest(
    CAST(:ids AS varchar[]), CAST(:rooms AS varchar[]), CAST(:ns AS bigint[]),
    CAST(:author_ids AS varchar[]), CAST(:author_kinds AS varchar[]),
    CAST(:author_names AS varchar[]), CAST(:bodies AS text[]),
    CAST(:client_ids AS varchar[]), CAST(:reply_tos AS bigint[]),
    CAST(:gen_ids AS varchar[]), CAST(:finishes AS varchar[]), CAST(:models AS varchar[]),
    CAST(:input_tokens AS integer[]), CAST(:output_tokens AS integer[]),
    CAST(:created_ats AS timestamptz[])
) AS p(id, room_id, n, author_id, author_kind, author_name, body, client_id, reply_to,
    gen_id, finish, model, input_tokens, output_tokens, created_at)
LEFT JOIN locked ON locked.id = p.room_id
RETURNING id, seq
"""
)


async def append_at_once(
    conn: AsyncConnection, posts: Sequence[NewMessage]
) -> list[Appended] | None:
    """`append_many` as one statement, on PostgreSQL, for a batch with no retried send.

    The statement is atomic on its own, so `conn` should be in autocommit: the batch is
    then stored in one round trip. Returns None, having stored nothing, when the batch
    needs `append_many` instead: SQLite, a `client_id` repeated within the batch or
    already stored (which the statement finds through the unique constraint), or a room
    that does not exist (for which `append_many` raises NotFound).

    Raises:
        Invalid: as `append_many`, but only for a value refused: a constraint violated
            declines, since a retried send violates one too.
    """
    if conn.dialect.name != "postgresql":
        return None
    keys: set[tuple[str, _Key]] = set()
    for post in posts:
        _validate(post)
        key = _key(post)
        if key is not None:
            if (post.room_id, key) in keys:
                return None
            keys.add((post.room_id, key))
    counts: dict[str, int] = {}
    numbers: list[int] = []
    for post in posts:
        counts[post.room_id] = numbers_in_room = counts.get(post.room_id, 0) + 1
        numbers.append(numbers_in_room)
    records = [_new_record(post, 0) for post in posts]
    rows = [_row(record) for record in records]
    params = {
        "room_ids": list(counts),
        "counts": list(counts.values()),
        "ns": numbers,
        **{plural: [row[column] for row in rows] for column, plural in _AT_ONCE_COLUMNS},
    }
    try:
        result = await conn.execute(_AT_ONCE, params)
    except IntegrityError:
        return None  # a retry or a missing room, or a bad row: `append_many` tells them apart
    except (DBAPIError, ValueError, OverflowError) as exc:
        if not refused_value(exc):
            raise
        raise Invalid(REFUSED) from exc
    seqs: dict[str, int] = {row[0]: row[1] for row in result}
    return [Appended(replace(record, seq=seqs[record.id]), False) for record in records]


# Row keys (see `_row`) and the array parameters of `_AT_ONCE` that carry them.
_AT_ONCE_COLUMNS = (
    ("id", "ids"),
    ("room_id", "rooms"),
    ("author_id", "author_ids"),
    ("author_kind", "author_kinds"),
    ("author_name", "author_names"),
    ("body", "bodies"),
    ("client_id", "client_ids"),
    ("reply_to", "reply_tos"),
    ("gen_id", "gen_ids"),
    ("finish", "finishes"),
    ("model", "models"),
    ("input_tokens", "input_tokens"),
    ("output_tokens", "output_tokens"),
    ("created_at", "created_ats"),
)


async def page(
    session: AsyncSession,
    room_id: str,
    *,
    before_seq: int | None = None,
    after_seq: int | None = None,
    limit: int = 50,
) -> MessagePage:
    """Up to `limit` messages of a room, always in ascending `seq`.

    With `after_seq` the ones just above it (below `before_seq` too, when both are given),
    and `more` says whether newer ones follow; otherwise the ones just below `before_seq`,
    or the newest, and `more` says whether older ones precede.
    """
    query = select(Message).where(Message.room_id == room_id)
    if before_seq is not None:
        query = query.where(Message.seq < before_seq)
    if after_seq is not None:
        query = query.where(Message.seq > after_seq).order_by(Message.seq)
    else:
        query = query.order_by(Message.seq.desc())
    rows = list((await session.scalars(query.limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    if after_seq is None:
        rows.reverse()
    return MessagePage([_record(row) for row in rows], more)


def _validate(post: NewMessage) -> None:
    if (post.author.kind == "user") != (post.author.id is not None):
        raise ValueError("a user message needs its author's id; an assistant one has none")
    if post.client_id is not None and len(post.client_id) > MAX_CLIENT_ID:
        raise Invalid(
            f"client_id: at most {MAX_CLIENT_ID} characters",
            details={"fields": {"client_id": "too long"}},
        )
    strings = (("body", post.body), ("client_id", post.client_id), ("author", post.author.name))
    for field, value in strings:
        reason = unstorable(value) if value is not None else None
        if reason is not None:
            raise Invalid(f"{field}: {reason}", details={"fields": {field: reason}})


def _key(post: NewMessage) -> _Key | None:
    if post.author.id is None or post.client_id is None:
        return None
    return (post.author.id, post.client_id)


async def _append_to_room(conn: Executor, room_id: str, posts: list[NewMessage]) -> list[Appended]:
    """Lock the room by taking the seqs first, then look for retries under the lock.

    Three round trips at most (UPDATE ... RETURNING, the retry SELECT when the batch has
    client ids, the INSERT), and a fourth only when a retry hands seqs back.
    """
    keys = {key for post in posts if (key := _key(post)) is not None}
    fresh, repeats = _plan(posts, {})
    last_seq = await _advance(conn, room_id, len(fresh))  # holds the room until commit
    # Under the lock, every identical send committed before (by anyone) is visible.
    found = await _find(conn, room_id, keys)
    if found:
        taken = len(fresh)
        fresh, repeats = _plan(posts, found)
        last_seq = await _advance(conn, room_id, len(fresh) - taken)  # give back
    first_seq = last_seq - len(fresh) + 1
    new = {i: _new_record(posts[i], first_seq + n) for n, i in enumerate(fresh)}
    if new:
        await conn.execute(insert(MESSAGES), [_row(record) for record in new.values()])
    for index, record in new.items():
        key = _key(posts[index])
        if key is not None:
            found[key] = record
    return [
        Appended(new[i], False) if i in new else Appended(found[repeats[i]], True)
        for i in range(len(posts))
    ]


def _plan(
    posts: list[NewMessage], found: dict[_Key, StoredMessage]
) -> tuple[list[int], dict[int, _Key]]:
    """Which posts to store (indexes), and which repeat a key stored or earlier in the batch."""
    seen: set[_Key] = set(found)
    fresh: list[int] = []
    repeats: dict[int, _Key] = {}
    for index, post in enumerate(posts):
        key = _key(post)
        if key is None:
            fresh.append(index)
        elif key in seen:
            repeats[index] = key
        else:
            seen.add(key)
            fresh.append(index)
    return fresh, repeats


async def _find(conn: Executor, room_id: str, keys: Iterable[_Key]) -> dict[_Key, StoredMessage]:
    wanted = set(keys)
    if not wanted:
        return {}
    columns = MESSAGES.c
    query = select(MESSAGES).where(
        columns.room_id == room_id, columns.client_id.in_({client for _, client in wanted})
    )
    found: dict[_Key, StoredMessage] = {}
    for row in await conn.execute(query):
        if row.author_id is not None and row.client_id is not None:
            key = (row.author_id, row.client_id)
            if key in wanted:
                found[key] = _record(row)
    return found


async def _advance(conn: Executor, room_id: str, by: int) -> int:
    """Move the room's `last_seq` by `by` and return it. Raises NotFound for no such room."""
    columns = ROOMS.c
    result = await conn.execute(
        update(ROOMS)
        .where(columns.id == room_id)
        .values(last_seq=columns.last_seq + by)
        .returning(columns.last_seq)
    )
    last_seq = result.scalar_one_or_none()
    if last_seq is None:
        raise NotFound("no such room")
    return int(last_seq)


def _new_record(post: NewMessage, seq: int) -> StoredMessage:
    return StoredMessage(
        id=new_id(),
        room_id=post.room_id,
        seq=seq,
        author=Author(post.author.id, post.author.name[:MAX_AUTHOR_NAME], post.author.kind),
        body=post.body,
        client_id=post.client_id,
        reply_to=post.reply_to,
        generation=post.generation,
        created_at=utcnow(),
    )


def _row(record: StoredMessage) -> dict[str, Any]:
    gen = record.generation
    row: dict[str, Any] = {
        "id": record.id,
        "room_id": record.room_id,
        "seq": record.seq,
        "author_id": record.author.id,
        "author_kind": record.author.kind,
        "author_name": record.author.name,
        "body": record.body,
        "client_id": record.client_id,
        "reply_to": record.reply_to,
        "created_at": record.created_at,
        # Every row carries every key, so one batch is one executemany.
        "gen_id": None,
        "finish": None,
        "model": None,
        "input_tokens": None,
        "output_tokens": None,
    }
    if gen is not None:
        row.update(
            gen_id=gen.gen_id,
            finish=gen.finish,
            model=gen.model,
            input_tokens=gen.input_tokens,
            output_tokens=gen.output_tokens,
        )
    return row


def _record(row: Any) -> StoredMessage:
    """A record from an ORM `Message` or a Core row of `messages` (same attribute names)."""
    generation = None
    if row.gen_id is not None:
        generation = Generation(
            row.gen_id, row.model or "", row.finish or "", row.input_tokens, row.output_tokens
        )
    kind: AuthorKind = "assistant" if row.author_kind == "assistant" else "user"
    return StoredMessage(
        id=row.id,
        room_id=row.room_id,
        seq=row.seq,
        author=Author(row.author_id, row.author_name, kind),
        body=row.body,
        client_id=row.client_id,
        reply_to=row.reply_to,
        generation=generation,
        created_at=row.created_at,
    )
