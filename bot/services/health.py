"""Is this instance fit to serve? What /healthz reports."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bot.services.logins import LoginService
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
    def __init__(self, database: Database) -> None:
        self._logins = LoginService(database)

    async def check(self) -> Health:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                login = await self._logins.current()  # a query: it proves the database too
        except Exception as exc:  # any failure means: not reachable
            log.warning("health check: database unreachable (%s)", type(exc).__name__)
            return Health(database=False, login="unknown")
        if login is None:
            return Health(database=True, login="missing")
        return Health(database=True, login="rejected" if login.record.invalid_at else "valid")
