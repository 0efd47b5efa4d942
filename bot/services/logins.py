"""The bot's upstream login, stored and kept healthy (one per upstream)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.logs import register_secret
from bot.services.credentials import parse_credentials
from bot.storage.database import Database
from bot.storage.logins import LoginRecord, LoginStore
from bot.upstream import Credentials, InvalidCredentials

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ActiveLogin:
    auth: Credentials
    record: LoginRecord


class LoginService:
    def __init__(self, database: Database, upstream: str = "hailuo") -> None:
        self._database = database
        self.upstream = upstream
        self._store = LoginStore(database, upstream)
        self._proven: set[int] = set()  # logins already recorded as working, by id

    async def current(self) -> ActiveLogin | None:
        record = await self._store.current()
        if record is None:
            return None
        try:
            auth = parse_credentials(record.credentials)
        except InvalidCredentials as exc:
            log.error(
                "the stored login %s is unreadable (%s); log in again", record.fingerprint, exc
            )
            return None
        protect(auth)
        return ActiveLogin(auth, record)

    async def save(
        self, auth: Credentials, *, source: str, obtained_by: int | None = None
    ) -> LoginRecord:
        """Store a login as the current one of *its* upstream (which may not be this one's)."""
        protect(auth)
        store = (
            self._store
            if self.upstream == auth.UPSTREAM
            else LoginStore(self._database, auth.UPSTREAM)
        )
        record = await store.save(
            auth.to_storage(),
            fingerprint=auth.fingerprint,
            source=source,
            obtained_by=obtained_by,
        )
        log.info("saved %s login %s (from %s)", auth.UPSTREAM, auth.fingerprint, source)
        return record

    async def renewed(self, login: ActiveLogin, auth: Credentials) -> ActiveLogin:
        """The same login with fresh credentials (a renewed token)."""
        if auth == login.auth:
            return login
        protect(auth)
        await self._store.update_credentials(login.record.id, auth.to_storage())
        return ActiveLogin(auth, login.record)

    async def previous(self) -> LoginRecord | None:
        return await self._store.previous()

    async def worked(self, login: ActiveLogin) -> None:
        """Record the first success of a login (and forget its fallback); later ones are free."""
        record = login.record
        if record.id in self._proven:
            return
        if record.last_success_at is None or record.invalid_at is not None:
            self._proven.add(record.id)  # before the write: concurrent answers write once
            await self._store.mark_success(record.id)
        else:
            self._proven.add(record.id)

    async def rejected(self, login: ActiveLogin) -> bool:
        """Mark the login invalid; True the first time, so admins are told once."""
        self._proven.discard(login.record.id)
        first = await self._store.mark_invalid(login.record.id)
        if first:
            log.warning(
                "%s rejected login %s; an admin must log in again",
                self.upstream,
                login.auth.fingerprint,
            )
        return first

    async def forget(self) -> int:
        return await self._store.delete_all()


def protect(auth: Credentials) -> None:
    for value in auth.secrets():
        register_secret(value)
