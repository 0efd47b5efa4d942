"""Conversations: which upstream conversation a Telegram chat, topic or member is in."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.database import Database
from bot.storage.history import forget_conversations
from bot.storage.models import NO_TOPIC, SHARED, ChatSettingsRow, ConversationRow, utcnow
from bot.storage.values import clean, upstream_id

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """Where a conversation lives: chat, topic (0 = none) and member (0 = shared by the chat)."""

    chat_id: int
    thread_id: int = NO_TOPIC
    user_id: int = SHARED


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    id: int
    key: ConversationKey
    upstream: str
    upstream_chat_id: str
    character_id: str
    token_fingerprint: str
    title: str
    message_count: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: ConversationRow) -> ConversationRecord:
        return cls(
            id=row.id,
            key=ConversationKey(row.chat_id, row.thread_id, row.user_id),
            upstream=row.upstream,
            upstream_chat_id=row.upstream_chat_id,
            character_id=row.character_id,
            token_fingerprint=row.token_fingerprint,
            title=row.title,
            message_count=row.message_count,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


def key_filter(key: ConversationKey) -> ColumnElement[bool]:
    return and_(
        ConversationRow.chat_id == key.chat_id,
        ConversationRow.thread_id == key.thread_id,
        ConversationRow.user_id == key.user_id,
    )


async def insert_if_missing(
    database: Database, session: AsyncSession, key: ConversationKey
) -> None:
    """Race-free on both engines: a concurrent insert of the same key is simply a no-op."""
    values = {
        "chat_id": key.chat_id,
        "thread_id": key.thread_id,
        "user_id": key.user_id,
        "upstream": "",
        "upstream_chat_id": "",
        "character_id": "1",
        "token_fingerprint": "",
        "title": "",
        "message_count": 0,
        "created_at": utcnow(),
        "updated_at": utcnow(),
    }
    statement = database.insert(ConversationRow).values(values).on_conflict_do_nothing()
    await session.execute(statement)


class ConversationStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def get(self, key: ConversationKey) -> ConversationRecord | None:
        async with self._db.reading() as session:
            row = await session.scalar(select(ConversationRow).where(key_filter(key)))
            return ConversationRecord.of(row) if row else None

    async def get_or_create(self, key: ConversationKey) -> ConversationRecord:
        existing = await self.get(key)
        if existing is not None:
            return existing
        async with self._db.writing() as session:
            await insert_if_missing(self._db, session, key)
            row = await session.scalar(select(ConversationRow).where(key_filter(key)))
            assert row is not None
            return ConversationRecord.of(row)

    async def record_answer(
        self,
        conversation_id: int,
        *,
        upstream_chat_id: str,
        token_fingerprint: str,
        title: str | None = None,
        upstream: str = "hailuo",
    ) -> None:
        """After an answer: remember the upstream conversation and count the exchange."""
        values: dict[str, object] = {
            "upstream": clean(upstream, 32),
            "upstream_chat_id": upstream_id(upstream_chat_id),
            "token_fingerprint": clean(token_fingerprint, 32),
            "message_count": ConversationRow.message_count + 1,
            "updated_at": utcnow(),
        }
        if title:
            values["title"] = clean(title, 256)
        async with self._db.writing() as session:
            await session.execute(
                update(ConversationRow).where(ConversationRow.id == conversation_id).values(values)
            )

    async def reset(self, key: ConversationKey) -> bool:
        """Start afresh on the next message: the stored history goes, the row and its answers
        stay."""
        async with self._db.writing() as session:
            conversation_id = await session.scalar(
                select(ConversationRow.id).where(key_filter(key))
            )
            if conversation_id is None:
                return False
            await forget_conversations(session, [conversation_id])
            await session.execute(
                update(ConversationRow)
                .where(ConversationRow.id == conversation_id)
                .values(upstream_chat_id="", token_fingerprint="", title="", updated_at=utcnow())
            )
            return True

    async def move_chat(self, old_chat_id: int, new_chat_id: int) -> int:
        """A group became a supergroup: its conversations follow it to the new chat id.

        Idempotent. A key that already exists under the new id keeps its newer row."""
        async with self._db.writing() as session:
            taken = select(ConversationRow.thread_id, ConversationRow.user_id).where(
                ConversationRow.chat_id == new_chat_id
            )
            occupied = {(row.thread_id, row.user_id) for row in await session.execute(taken)}
            rows = (
                await session.scalars(
                    select(ConversationRow).where(ConversationRow.chat_id == old_chat_id)
                )
            ).all()
            moved = 0
            for row in rows:
                if (row.thread_id, row.user_id) in occupied:
                    log.warning(
                        "chat %s migrated: topic %s already has a conversation there",
                        new_chat_id,
                        row.thread_id,
                    )
                    continue
                row.chat_id = new_chat_id
                moved += 1
            settings = await session.get(ChatSettingsRow, old_chat_id)
            if settings is not None and await session.get(ChatSettingsRow, new_chat_id) is None:
                settings.chat_id = new_chat_id
            return moved

    async def count(self) -> int:
        async with self._db.reading() as session:
            return int(await session.scalar(select(func.count(ConversationRow.id))) or 0)
