"""Alembic environment: runs on a connection handed over by the bot, or on DATABASE_URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from bot.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _database_url() -> str:
    has_section = config.file_config.has_section(config.config_ini_section)
    url = config.get_main_option("sqlalchemy.url") if has_section else None
    if url:
        return url
    from bot.config import load_settings

    return load_settings().database_url


def run_offline() -> None:
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    """`alembic` on the command line: the bot's own engine set-up (file mode, pragmas)."""
    from bot.storage.database import Database
    from bot.storage.migrations import migration_engine

    database = Database(_database_url())
    engine = migration_engine(database)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_configure_and_run)
    finally:
        await engine.dispose()
        await database.close()


if context.is_offline_mode():
    run_offline()
elif (handed_over := config.attributes.get("connection")) is not None:
    _configure_and_run(handed_over)
else:
    asyncio.run(run_online())
