"""Alembic, driven from code: start-up upgrades, the `db` commands, and the schema check."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.storage.database import Database, sqlite_engine

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
MIGRATION_LOCK_ID = 0x4861696C756F  # any constant shared by every instance ("Hailuo")


class SchemaError(Exception):
    """The database schema does not match this code; the message says what to do."""


def alembic_config(url: str) -> Config:
    if not (MIGRATIONS_DIR / "env.py").exists():
        raise SchemaError(
            f"the migrations folder is missing ({MIGRATIONS_DIR}); "
            "install the bot from its source tree with `pip install -e .`"
        )
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None, "the migrations folder has no revisions"
    return head


def migration_engine(database: Database) -> AsyncEngine:
    """SQLite table rewrites (batch mode) must run with foreign keys off, or they cascade."""
    if database.is_sqlite:
        return sqlite_engine(database.url, writer=False, foreign_keys=False)
    return create_async_engine(database.url)


async def upgrade(database: Database, revision: str = "head") -> None:
    await _run(database, lambda config: command.upgrade(config, revision))


async def downgrade(database: Database, revision: str) -> None:
    await _run(database, lambda config: command.downgrade(config, revision))


async def _run(database: Database, operation: object) -> None:
    config = alembic_config(database.url)
    engine = migration_engine(database)
    try:
        async with engine.begin() as connection:

            def apply(sync_connection: Connection) -> None:
                if not database.is_sqlite:
                    # Instances starting together migrate one after another; the later ones
                    # then find the schema at head and do nothing.
                    sync_connection.exec_driver_sql(
                        f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"
                    )
                config.attributes["connection"] = sync_connection
                operation(config)  # type: ignore[operator]

            await connection.run_sync(apply)
    finally:
        await engine.dispose()


async def current_revision(database: Database) -> str | None:
    async with database.read_engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


async def ensure_schema(database: Database, *, auto_migrate: bool) -> str:
    """Bring the schema to head, or explain why the bot must not start on it."""
    current = await current_revision(database)
    head = head_revision()
    if current == head:
        return head
    if current is not None:
        script = ScriptDirectory.from_config(alembic_config(database.url))
        try:
            script.get_revision(current)
        except CommandError:
            raise SchemaError(
                f"the database is at schema revision {current}, which this version of the bot "
                f"does not know (its newest is {head}): it was written by a newer version. "
                "Upgrade the bot, or point DATABASE_URL at another database."
            ) from None
    if not auto_migrate:
        raise SchemaError(
            f"the database schema is at {current or 'empty'}, this code needs {head}, and "
            "AUTO_MIGRATE is off: run `python -m bot db upgrade` first"
        )
    await upgrade(database)
    return head
