"""Answers: one row per answer, written at most three times (start, first text, end)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.conversations import (
    ConversationKey,
    ConversationRecord,
    insert_if_missing,
    key_filter,
)
from bot.storage.database import Database
from bot.storage.history import NewTurn, add_turn
from bot.storage.models import (
    UNFINISHED_STATUSES,
    AnswerRow,
    AnswerStatus,
    ConversationRow,
    utcnow,
)
from bot.storage.values import clean, upstream_id


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    id: int
    conversation_id: int
    chat_id: int
    thread_id: int
    user_id: int | None
    user_message_id: int | None
    bot_message_ids: tuple[int, ...]
    instance_id: str | None
    status: AnswerStatus
    chars: int
    error_kind: str | None
    created_at: datetime
    started_at: datetime | None
    first_text_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: AnswerRow) -> AnswerRecord:
        return cls(
            id=row.id,
            conversation_id=row.conversation_id,
            chat_id=row.chat_id,
            thread_id=row.thread_id,
            user_id=row.user_id,
            user_message_id=row.user_message_id,
            bot_message_ids=tuple(row.bot_message_ids or ()),
            instance_id=row.instance_id,
            status=AnswerStatus(row.status),
            chars=row.chars,
            error_kind=row.error_kind,
            created_at=row.created_at,
            started_at=row.started_at,
            first_text_at=row.first_text_at,
            finished_at=row.finished_at,
        )


@dataclass(frozen=True, slots=True)
class ConversationUpdate:
    """What an answer taught us about its conversation, saved with the answer's final state."""

    conversation_id: int
    upstream_chat_id: str
    token_fingerprint: str
    title: str | None = None
    upstream: str = "hailuo"


FINAL_STATUSES = frozenset(AnswerStatus) - frozenset(UNFINISHED_STATUSES)


async def _forgotten_since(session: AsyncSession, answer_id: int) -> bool:
    """The answer's conversation was forgotten (/forget) after its question was accepted."""
    row = (
        await session.execute(
            select(AnswerRow.created_at, ConversationRow.forgotten_at)
            .join(ConversationRow, ConversationRow.id == AnswerRow.conversation_id)
            .where(AnswerRow.id == answer_id)
        )
    ).first()
    return row is not None and row.forgotten_at is not None and row.forgotten_at >= row.created_at


class AnswerStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def begin(
        self,
        key: ConversationKey,
        *,
        chat_id: int,
        thread_id: int,
        user_id: int | None,
        user_message_id: int | None,
        instance_id: str | None = None,
    ) -> tuple[ConversationRecord, int]:
        """An answer starts streaming: its conversation (made if new) and its row, in one write."""
        async with self._db.writing() as session:
            conversation, answer_id = await self._add(
                session, key, AnswerStatus.STREAMING, chat_id, thread_id, user_id,
                user_message_id, instance_id,
            )  # fmt: skip
            return ConversationRecord.of(conversation), answer_id

    async def enqueue(
        self,
        key: ConversationKey,
        *,
        chat_id: int,
        thread_id: int,
        user_id: int | None,
        user_message_id: int | None,
        instance_id: str | None = None,
    ) -> int:
        """A question is accepted: its row (`queued`) and its conversation (made if new), in one
        write, before the update is acknowledged. If the process dies before the answer, the
        restart finds the row and tells the user (instead of the question vanishing)."""
        async with self._db.writing() as session:
            _, answer_id = await self._add(
                session, key, AnswerStatus.QUEUED, chat_id, thread_id, user_id,
                user_message_id, instance_id,
            )  # fmt: skip
            return answer_id

    async def _add(
        self,
        session: AsyncSession,
        key: ConversationKey,
        status: AnswerStatus,
        chat_id: int,
        thread_id: int,
        user_id: int | None,
        user_message_id: int | None,
        instance_id: str | None,
    ) -> tuple[ConversationRow, int]:
        conversation = await session.scalar(select(ConversationRow).where(key_filter(key)))
        if conversation is None:
            await insert_if_missing(self._db, session, key)
            conversation = await session.scalar(select(ConversationRow).where(key_filter(key)))
            assert conversation is not None
        now = utcnow()
        row = AnswerRow(
            conversation_id=conversation.id,
            chat_id=chat_id,
            thread_id=thread_id,
            user_id=user_id,
            user_message_id=user_message_id,
            bot_message_ids=[],
            instance_id=instance_id,
            status=status,
            chars=0,
            created_at=now,
            started_at=now if status is AnswerStatus.STREAMING else None,
        )
        session.add(row)
        await session.flush()
        return conversation, row.id

    async def first_text(self, answer_id: int, bot_message_ids: list[int]) -> None:
        async with self._db.writing() as session:
            await session.execute(
                update(AnswerRow)
                .where(AnswerRow.id == answer_id)
                .values(
                    status=AnswerStatus.STREAMING,
                    bot_message_ids=bot_message_ids,
                    first_text_at=utcnow(),
                    started_at=func.coalesce(AnswerRow.started_at, utcnow()),
                )
            )

    async def finish(
        self,
        answer_id: int,
        status: AnswerStatus,
        *,
        chars: int,
        bot_message_ids: list[int],
        error_kind: str | None = None,
        error_text: str | None = None,
        conversation: ConversationUpdate | None = None,
        turn: NewTurn | None = None,
    ) -> None:
        """The answer's last write; the conversation it continued is updated, and the exchange
        stored in its history, in the same one."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"{status} is not a final status")
        async with self._db.writing() as session:
            if (turn is not None or conversation is not None) and await _forgotten_since(
                session, answer_id
            ):
                turn = conversation = None  # the chat said /forget after this was asked
            if turn is not None:
                conversation_id = await session.scalar(
                    select(AnswerRow.conversation_id).where(AnswerRow.id == answer_id)
                )
                if conversation_id is not None:
                    await add_turn(session, conversation_id, answer_id, turn)
            if conversation is not None:
                values: dict[str, object] = {
                    "upstream": clean(conversation.upstream, 32),
                    "upstream_chat_id": upstream_id(conversation.upstream_chat_id),
                    "token_fingerprint": clean(conversation.token_fingerprint, 32),
                    "message_count": ConversationRow.message_count + 1,
                    "updated_at": utcnow(),
                }
                if conversation.title:
                    values["title"] = clean(conversation.title, 256)
                await session.execute(
                    update(ConversationRow)
                    .where(ConversationRow.id == conversation.conversation_id)
                    .values(values)
                )
            await session.execute(
                update(AnswerRow)
                .where(AnswerRow.id == answer_id)
                .values(
                    status=status,
                    chars=chars,
                    bot_message_ids=bot_message_ids,
                    error_kind=error_kind,
                    error_text=clean(error_text, 2000) if error_text else None,
                    finished_at=utcnow(),
                )
            )

    async def close(self, answer_id: int, status: AnswerStatus, error_kind: str) -> None:
        """The smallest final write, when the full one failed: the row must not stay
        `streaming` (it would look like a crash forever)."""
        async with self._db.writing() as session:
            await session.execute(
                update(AnswerRow)
                .where(AnswerRow.id == answer_id)
                .values(status=status, error_kind=error_kind, finished_at=utcnow())
            )

    async def get(self, answer_id: int) -> AnswerRecord | None:
        async with self._db.reading() as session:
            row = await session.get(AnswerRow, answer_id)
            return AnswerRecord.of(row) if row else None

    async def unfinished(self, instance_id: str | None = None) -> list[AnswerRecord]:
        """Answers not finished yet: all of them, or one instance's."""
        query = select(AnswerRow).where(AnswerRow.status.in_(UNFINISHED_STATUSES))
        if instance_id is not None:
            query = query.where(AnswerRow.instance_id == instance_id)
        async with self._db.reading() as session:
            rows = await session.scalars(query.order_by(AnswerRow.id))
            return [AnswerRecord.of(row) for row in rows]

    async def unfinished_elsewhere(
        self, key: ConversationKey, instance_id: str | None, before_message: int
    ) -> set[str]:
        """The instances with an answer in this conversation to an earlier message, from the
        last hour, that is not closed yet (this instance left out)."""
        query = (
            select(AnswerRow.instance_id)
            .join(ConversationRow, ConversationRow.id == AnswerRow.conversation_id)
            .where(
                key_filter(key),
                AnswerRow.status.in_(UNFINISHED_STATUSES),
                AnswerRow.instance_id != instance_id,
                AnswerRow.created_at > utcnow() - timedelta(hours=1),
                AnswerRow.user_message_id < before_message,
            )
            .distinct()
        )
        async with self._db.reading() as session:
            return {found for found in await session.scalars(query) if found}

    async def unfinished_in(self, chat_id: int, thread_id: int, user_id: int | None) -> list[int]:
        """Unfinished answers in a chat's topic asked by `user_id` (None: all of them)."""
        query = (
            select(AnswerRow.id)
            .join(ConversationRow, ConversationRow.id == AnswerRow.conversation_id)
            .where(
                AnswerRow.status.in_(UNFINISHED_STATUSES),
                AnswerRow.chat_id == chat_id,
                AnswerRow.thread_id == thread_id,
            )
        )
        if user_id is not None:
            query = query.where(AnswerRow.user_id == user_id)
        async with self._db.reading() as session:
            return list(await session.scalars(query))

    async def mark_interrupted(self, answer_ids: list[int]) -> list[int]:
        """Close unfinished answers; returns the ones this call closed, so that when two
        instances try at once, only one of them tells the user."""
        if not answer_ids:
            return []
        async with self._db.writing() as session:
            closed = await session.scalars(
                update(AnswerRow)
                .where(AnswerRow.id.in_(answer_ids), AnswerRow.status.in_(UNFINISHED_STATUSES))
                .values(status=AnswerStatus.INTERRUPTED, error_kind="restart", finished_at=utcnow())
                .returning(AnswerRow.id)
            )
            return sorted(closed)

    async def counts_by_status(self) -> dict[AnswerStatus, int]:
        async with self._db.reading() as session:
            rows = await session.execute(
                select(AnswerRow.status, func.count(AnswerRow.id)).group_by(AnswerRow.status)
            )
            counts = dict.fromkeys(AnswerStatus, 0)
            counts.update({AnswerStatus(status): int(count) for status, count in rows})
            return counts

    async def for_conversation(self, conversation_id: int) -> list[AnswerRecord]:
        async with self._db.reading() as session:
            rows = await session.scalars(
                select(AnswerRow)
                .where(AnswerRow.conversation_id == conversation_id)
                .order_by(AnswerRow.id)
            )
            return [AnswerRecord.of(row) for row in rows]

    async def move_chat(self, old_chat_id: int, new_chat_id: int) -> None:
        async with self._db.writing() as session:
            await session.execute(
                update(AnswerRow)
                .where(AnswerRow.chat_id == old_chat_id, AnswerRow.status.in_(UNFINISHED_STATUSES))
                .values(chat_id=new_chat_id)
            )
