"""The bot's Hailuo login, stored and kept healthy."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.hailuo import AuthState, InvalidAuthState
from bot.logs import register_secret
from bot.storage.database import Database
from bot.storage.logins import LoginRecord, LoginStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ActiveLogin:
    auth: AuthState
    record: LoginRecord


class LoginService:
    def __init__(self, database: Database) -> None:
        self._store = LoginStore(database)
        self._proven: set[int] = set()  # logins already recorded as working, by id

    async def current(self) -> ActiveLogin | None:
        record = await self._store.current()
        if record is None:
            return None
        try:
            auth = AuthState.from_mapping(record.credentials)
        except InvalidAuthState as exc:
            log.error(
                "the stored login %s is unreadable (%s); log in again", record.fingerprint, exc
            )
            return None
        _protect(auth)
        return ActiveLogin(auth, record)

    async def save(
        self, auth: AuthState, *, source: str, obtained_by: int | None = None
    ) -> LoginRecord:
        _protect(auth)
        record = await self._store.save(
            auth.model_dump(mode="json"),
            fingerprint=auth.fingerprint,
            source=source,
            obtained_by=obtained_by,
        )
        log.info("saved Hailuo login %s (from %s)", auth.fingerprint, source)
        return record

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
                "Hailuo rejected login %s; an admin must log in again", login.auth.fingerprint
            )
        return first

    async def forget(self) -> int:
        return await self._store.delete_all()


def _protect(auth: AuthState) -> None:
    register_secret(auth.token)
    for value in auth.cookies.values():
        register_secret(value)
