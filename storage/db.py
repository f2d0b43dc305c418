"""The async engine and session factory, for PostgreSQL (asyncpg) and SQLite (aiosqlite)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from errors import Unavailable

logger = logging.getLogger(__name__)

#: What a database that cannot be reached raises: a refused connect, a connection dropped
#: under a statement, a connect or pool timeout. Not a statement the database refused.
DATABASE_DOWN = (OperationalError, InterfaceError, PoolTimeout, OSError, TimeoutError)

#: How a PostgreSQL URL may begin (`postgres://` is the short spelling some hosts hand out).
_POSTGRES_BACKENDS = frozenset({"postgresql", "postgres"})


def normalize_url(url: str) -> str:
    """Accept the plain spellings (`postgresql://`, `sqlite:///`) and name the async driver.

    Raises:
        ValueError: `url` is not a PostgreSQL or SQLite URL; the message says why without
            repeating the URL, which may hold a password.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(
            "not a database URL; expected postgresql://user:password@host:5432/name "
            "or sqlite:///path/to/roomcast.db"
        ) from None
    except ValueError:  # the one part make_url converts itself
        raise ValueError("its port is not a number") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if backend in _POSTGRES_BACKENDS:
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database {backend!r}: use postgresql or sqlite")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Foreign keys are off by default in SQLite; WAL lets readers run beside the writer.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str, *, pool_size: int = 10, connect_timeout: float = 5.0) -> AsyncEngine:
    """Build the engine for `url`; SQLite gets its pragmas and its parent folder."""
    url = normalize_url(url)
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": connect_timeout})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # No pre-ping (a round trip per checkout on the hot path): a connection that died with
    # a database restart fails its first statement, and SQLAlchemy then invalidates the
    # whole pool, so the next checkout connects afresh. Last in, first out: the connection
    # used last is used next, so the statements a request runs are prepared on it already
    # (a statement's first run on a connection costs some 15 ms more), and the rest idle.
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_use_lifo=True,
        pool_timeout=connect_timeout,
        connect_args={"timeout": connect_timeout, "command_timeout": 30},
    )


def database_down(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached, not that it refused a statement."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, DATABASE_DOWN)
    return isinstance(exc, DATABASE_DOWN)


@contextmanager
def unavailable_when_down() -> Iterator[None]:
    """Raise `Unavailable` (503, `unavailable`) when the database cannot be reached inside
    the block, for callers whose client should retry rather than hear of a bug."""
    try:
        yield
    except (DBAPIError, *DATABASE_DOWN) as exc:
        if not database_down(exc):
            raise
        raise Unavailable("the database is unavailable; retry shortly") from exc


class Database:
    """One engine and its session factory; the handle repositories are given."""

    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url, pool_size=pool_size)
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )
        # The same pool without transactions: for work of one statement, which is atomic
        # by itself, so no BEGIN and COMMIT (or ROLLBACK) round trips around it.
        self.autocommit: AsyncEngine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # For lookups on hot paths (token checks, access checks, the rooms' reads). Never
        # for writes: `begin()` on these sessions starts no transaction.
        self.reads: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.autocommit, expire_on_commit=False
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def ping(self, timeout: float = 2.0) -> None:
        """Run `SELECT 1`; raises when the database does not answer within `timeout`."""
        async with asyncio.timeout(timeout):
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
