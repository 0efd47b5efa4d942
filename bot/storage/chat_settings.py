"""Per-chat settings, such as whether a group shares one conversation or gives each member one."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from bot.storage.database import Database
from bot.storage.models import ChatSettingsRow, ContextMode, utcnow


@dataclass(frozen=True, slots=True)
class ChatSettings:
    chat_id: int
    context_mode: ContextMode = ContextMode.SHARED


class ChatSettingsStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def get(self, chat_id: int) -> ChatSettings:
        async with self._db.reading() as session:
            row = await session.get(ChatSettingsRow, chat_id)
            if row is None:
                return ChatSettings(chat_id)
            return ChatSettings(chat_id, ContextMode(row.context_mode))

    async def all(self) -> list[ChatSettings]:
        async with self._db.reading() as session:
            rows = await session.scalars(select(ChatSettingsRow))
            return [ChatSettings(row.chat_id, ContextMode(row.context_mode)) for row in rows]

    async def set_context_mode(self, chat_id: int, mode: ContextMode) -> None:
        async with self._db.writing() as session:
            values = {"chat_id": chat_id, "context_mode": str(mode), "updated_at": utcnow()}
            statement = self._db.insert(ChatSettingsRow).values(values)
            statement = statement.on_conflict_do_update(
                index_elements=[ChatSettingsRow.chat_id],
                set_={"context_mode": str(mode), "updated_at": values["updated_at"]},
            )
            await session.execute(statement)
