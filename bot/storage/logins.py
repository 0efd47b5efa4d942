"""The upstream login: one current row, and the previous one until the new one has worked.

Credentials are stored as an opaque mapping; this layer only ever shows the fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update

from bot.storage.database import Database
from bot.storage.models import LoginRow, utcnow


@dataclass(frozen=True, slots=True)
class LoginRecord:
    id: int
    fingerprint: str
    is_current: bool
    source: str
    obtained_by: int | None
    obtained_at: datetime
    last_success_at: datetime | None
    invalid_at: datetime | None
    credentials: dict[str, Any] = field(repr=False)

    @classmethod
    def of(cls, row: LoginRow) -> LoginRecord:
        return cls(
            id=row.id,
            fingerprint=row.fingerprint,
            is_current=row.is_current,
            source=row.source,
            obtained_by=row.obtained_by,
            obtained_at=row.obtained_at,
            last_success_at=row.last_success_at,
            invalid_at=row.invalid_at,
            credentials=dict(row.credentials),
        )


class LoginStore:
    """The logins of one upstream (each upstream has its own current login and fallback)."""

    def __init__(self, database: Database, upstream: str = "hailuo") -> None:
        self._db = database
        self._upstream = upstream

    async def current(self) -> LoginRecord | None:
        return await self._one(current=True)

    async def previous(self) -> LoginRecord | None:
        return await self._one(current=False)

    async def _one(self, *, current: bool) -> LoginRecord | None:
        async with self._db.reading() as session:
            row = await session.scalar(
                select(LoginRow)
                .where(LoginRow.is_current == current, LoginRow.upstream == self._upstream)
                .order_by(LoginRow.obtained_at.desc(), LoginRow.id.desc())
                .limit(1)
            )
            return LoginRecord.of(row) if row else None

    async def save(
        self,
        credentials: dict[str, Any],
        *,
        fingerprint: str,
        source: str,
        obtained_by: int | None = None,
    ) -> LoginRecord:
        """Make a new login current. The last login known to work is kept as the fallback."""
        async with self._db.writing() as session:
            mine = LoginRow.upstream == self._upstream
            old = await session.scalar(select(LoginRow).where(LoginRow.is_current.is_(True), mine))
            has_previous = await session.scalar(
                select(LoginRow.id).where(LoginRow.is_current.is_(False), mine).limit(1)
            )
            if old is not None:
                if old.last_success_at is not None or has_previous is None:
                    await session.execute(
                        delete(LoginRow).where(LoginRow.is_current.is_(False), mine)
                    )
                    old.is_current = False
                else:
                    # The outgoing login never worked: the older, proven one stays the fallback.
                    await session.delete(old)
                await session.flush()
            row = LoginRow(
                upstream=self._upstream,
                credentials=credentials,
                fingerprint=fingerprint,
                is_current=True,
                source=source,
                obtained_by=obtained_by,
                obtained_at=utcnow(),
            )
            session.add(row)
            await session.flush()
            return LoginRecord.of(row)

    async def mark_success(self, login_id: int) -> None:
        """The login answered: it is proven, so the fallback can go."""
        async with self._db.writing() as session:
            result = await session.execute(
                update(LoginRow)
                .where(LoginRow.id == login_id, LoginRow.is_current.is_(True))
                .values(last_success_at=utcnow(), invalid_at=None)
            )
            if getattr(result, "rowcount", 0):
                await session.execute(
                    delete(LoginRow).where(
                        LoginRow.is_current.is_(False), LoginRow.upstream == self._upstream
                    )
                )

    async def update_credentials(self, login_id: int, credentials: dict[str, Any]) -> None:
        """The same login with renewed credentials (a refreshed token)."""
        async with self._db.writing() as session:
            await session.execute(
                update(LoginRow).where(LoginRow.id == login_id).values(credentials=credentials)
            )

    async def mark_invalid(self, login_id: int) -> bool:
        """Record that upstream refused the login; True only the first time (notify once)."""
        async with self._db.writing() as session:
            result = await session.execute(
                update(LoginRow)
                .where(LoginRow.id == login_id, LoginRow.invalid_at.is_(None))
                .values(invalid_at=utcnow())
            )
            return bool(getattr(result, "rowcount", 0))

    async def delete_all(self) -> int:
        async with self._db.writing() as session:
            result = await session.execute(delete(LoginRow))
            return int(getattr(result, "rowcount", 0))
