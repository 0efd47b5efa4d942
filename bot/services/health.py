"""Is this instance fit to serve? What /healthz reports."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy import text

from bot.services.upstreams import LoginSource
from bot.storage.database import Database

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Health:
    database: bool
    login: str  # valid, missing, rejected or unknown (the database could not say)

    @property
    def serving(self) -> bool:
        """Can take updates. A missing or rejected login does not count against it: every
        instance shares the login, and users should still hear why answers fail."""
        return self.database


class HealthCheck:
    def __init__(self, database: Database, logins: LoginSource) -> None:
        self._database = database
        self._logins = logins  # the primary upstream's (an API key needs no query)

    async def check(self) -> Health:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                async with self._database.reading() as session:
                    await session.execute(text("SELECT 1"))
                login = await self._logins.current()
        except Exception as exc:  # any failure means: not reachable
            log.warning("health check: database unreachable (%s)", type(exc).__name__)
            return Health(database=False, login="unknown")
        if login is None:
            return Health(database=True, login="missing")
        return Health(database=True, login="rejected" if login.record.invalid_at else "valid")
