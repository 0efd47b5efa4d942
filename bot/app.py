"""The Telegram bot process: database ready, then polling until stopped."""

from __future__ import annotations

import logging

from bot.config import Settings
from bot.storage.database import Database
from bot.storage.migrations import ensure_schema

log = logging.getLogger(__name__)


async def run(settings: Settings) -> int:
    database = Database(settings.database_url)
    try:
        revision = await ensure_schema(database, auto_migrate=settings.auto_migrate)
        log.info("database ready (%s, schema %s)", database.engine_name, revision)
        log.error("the Telegram bridge is not built yet")
        return 1
    finally:
        await database.close()
