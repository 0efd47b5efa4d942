"""Engines and sessions. SQLite gets one writer connection and WAL so writers queue, not fail."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_READERS = 4
# PostgreSQL: seconds for one statement, for a new connection, and for a free pooled one.
COMMAND_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
POOL_TIMEOUT = 30.0


class Database:
    """Owns the engines. Reads and writes go through separate sessions so SQLite readers never
    hold up the single writer, and the writer's transactions take the write lock up front."""

    def __init__(
        self, url: str, *, echo: bool = False, command_timeout: float = COMMAND_TIMEOUT
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            prepare_sqlite_file(url)
            self.write_engine = sqlite_engine(url, echo=echo, writer=True)
            self.read_engine = sqlite_engine(url, echo=echo, writer=False)
        else:
            self.write_engine = create_async_engine(
                url,
                echo=echo,
                pool_pre_ping=True,
                pool_size=10,
                max_overflow=10,
                pool_timeout=POOL_TIMEOUT,
                # A stalled server or network must not hold a conversation's turn (or a
                # shutdown) forever: every statement and every connect has a deadline.
                connect_args={"command_timeout": command_timeout, "timeout": CONNECT_TIMEOUT},
            )
            self.read_engine = self.write_engine
        self.writes = 0  # write transactions so far: for /status, the log and the benchmark
        self._writer = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self._reader = async_sessionmaker(self.read_engine, expire_on_commit=False)

    @property
    def engine_name(self) -> str:
        return self.write_engine.dialect.name

    def insert(self, table: Any) -> sqlite.Insert | postgresql.Insert:
        """An INSERT that understands ON CONFLICT on either engine."""
        if self.is_sqlite:
            return sqlite.insert(table)
        return postgresql.insert(table)

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """One transaction, committed on success and rolled back on error."""
        self.writes += 1
        async with self._writer() as session, session.begin():
            yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        async with self._reader() as session:
            yield session

    async def close(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()


def sqlite_engine(
    url: str, *, echo: bool = False, writer: bool, foreign_keys: bool = True
) -> AsyncEngine:
    pool: dict[str, Any] = (
        {"pool_size": 1, "max_overflow": 0, "pool_timeout": 120}
        if writer
        else {"pool_size": SQLITE_READERS, "max_overflow": 0, "pool_timeout": 120}
    )
    engine = create_async_engine(url, echo=echo, **pool)

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.close()
        if writer:
            # We issue BEGIN ourselves (below) instead of the driver's implicit one.
            dbapi_connection.isolation_level = None

    if writer:

        @event.listens_for(engine.sync_engine, "begin")
        def _begin_immediate(connection: Any) -> None:
            # Take the write lock at BEGIN: waiting here honours busy_timeout, whereas upgrading
            # a read transaction later fails at once with "database is locked".
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def prepare_sqlite_file(url: str) -> None:
    """Create the database file owner-only before SQLite does (it would use the umask)."""
    path = sqlite_path(url)
    if path is None:
        return
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    if not path.exists():
        descriptor = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(descriptor)
    tighten(path)
    for suffix in ("-wal", "-shm"):
        companion = Path(f"{path}{suffix}")
        if companion.exists():
            tighten(companion)


def sqlite_path(database_url: str) -> Path | None:
    """The database file of a SQLite URL, or None for other engines and in-memory databases."""
    prefix = "sqlite+aiosqlite:///"
    if not database_url.startswith(prefix):
        return None
    path = database_url[len(prefix) :].split("?", 1)[0]
    if path in ("", ":memory:"):
        return None
    return Path(path)


def tighten(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("database file %s was readable by others; setting owner-only access", path)
        path.chmod(0o600)
