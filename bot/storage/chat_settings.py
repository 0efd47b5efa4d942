"""Per-chat and per-user settings: a group's context mode, the language chosen with /lang."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from bot.storage.database import Database
from bot.storage.models import ChatSettingsRow, ContextMode, UserSettingsRow, utcnow


@dataclass(frozen=True, slots=True)
class ChatSettings:
    chat_id: int
    context_mode: ContextMode = ContextMode.SHARED
    language: str | None = None
    model: str | None = None
    model_upstream: str | None = None

    def model_for(self, upstream: str) -> str | None:
        """The model picked with /model, if it was picked for this upstream."""
        return self.model if self.model and self.model_upstream == upstream else None


class ChatSettingsStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def get(self, chat_id: int) -> ChatSettings:
        async with self._db.reading() as session:
            row = await session.get(ChatSettingsRow, chat_id)
            return _chat(row) if row is not None else ChatSettings(chat_id)

    async def all(self) -> list[ChatSettings]:
        async with self._db.reading() as session:
            return [_chat(row) for row in await session.scalars(select(ChatSettingsRow))]

    async def set_context_mode(self, chat_id: int, mode: ContextMode) -> None:
        await self._upsert(chat_id, context_mode=str(mode))

    async def set_language(self, chat_id: int, language: str | None) -> None:
        await self._upsert(chat_id, language=language)

    async def set_model(self, chat_id: int, upstream: str, model: str | None) -> None:
        """None: back to the default model."""
        await self._upsert(chat_id, model=model, model_upstream=upstream if model else None)

    async def _upsert(self, chat_id: int, **values: Any) -> None:
        values["updated_at"] = utcnow()
        statement = self._db.insert(ChatSettingsRow).values(chat_id=chat_id, **values)
        statement = statement.on_conflict_do_update(
            index_elements=[ChatSettingsRow.chat_id], set_=values
        )
        async with self._db.writing() as session:
            await session.execute(statement)


class UserSettingsStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def languages(self) -> dict[int, str]:
        """Every user's chosen language (users who never chose are absent)."""
        async with self._db.reading() as session:
            rows = await session.execute(
                select(UserSettingsRow.user_id, UserSettingsRow.language).where(
                    UserSettingsRow.language.is_not(None)
                )
            )
            return {user_id: language for user_id, language in rows if language}

    async def set_language(self, user_id: int, language: str | None) -> None:
        values = {"language": language, "updated_at": utcnow()}
        statement = self._db.insert(UserSettingsRow).values(user_id=user_id, **values)
        statement = statement.on_conflict_do_update(
            index_elements=[UserSettingsRow.user_id], set_=values
        )
        async with self._db.writing() as session:
            await session.execute(statement)


def _chat(row: ChatSettingsRow) -> ChatSettings:
    return ChatSettings(
        row.chat_id, ContextMode(row.context_mode), row.language, row.model, row.model_upstream
    )
