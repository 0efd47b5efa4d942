"""Migrations on both engines: up, down, in agreement with the models, and refusing the unknown."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from bot.storage.database import Database
from bot.storage.migrations import (
    SchemaError,
    current_revision,
    downgrade,
    ensure_schema,
    head_revision,
    upgrade,
)
from bot.storage.models import Base

TABLES = {"conversations", "logins", "answers", "chat_settings", "user_settings"}


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_upgrade_matches_models_and_downgrade_empties(database_url: str) -> None:
    database = Database(database_url)
    try:
        assert await current_revision(database) is None
        await upgrade(database)
        assert await current_revision(database) == head_revision()
        async with database.read_engine.connect() as connection:
            assert await connection.run_sync(_tables) >= TABLES
            assert await connection.run_sync(_differences) == []

        await downgrade(database, "base")
        assert await current_revision(database) is None
        async with database.read_engine.connect() as connection:
            assert not TABLES & await connection.run_sync(_tables)
    finally:
        await database.close()


async def test_start_refuses_a_database_from_a_newer_version(database_url: str) -> None:
    database = Database(database_url)
    try:
        await ensure_schema(database, auto_migrate=True)
        async with database.writing() as session:
            await session.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
        with pytest.raises(SchemaError, match=r"f00d.*newer version"):
            await ensure_schema(database, auto_migrate=True)
    finally:
        await database.close()


async def test_without_auto_migrate_an_old_schema_is_refused(database_url: str) -> None:
    database = Database(database_url)
    try:
        with pytest.raises(SchemaError, match="db upgrade"):
            await ensure_schema(database, auto_migrate=False)
        assert await current_revision(database) is None
        await ensure_schema(database, auto_migrate=True)
        assert await ensure_schema(database, auto_migrate=False) == head_revision()
    finally:
        await database.close()
