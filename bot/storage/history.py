"""Conversation history: the turns an upstream that keeps no conversation is sent again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.database import Database
from bot.storage.models import ConversationRow, TurnRow, utcnow
from bot.storage.values import clean

# Rows read per question at most: more than any budget of whole turns needs.
READ_LIMIT = 400


@dataclass(frozen=True, slots=True)
class StoredTurn:
    question: str
    answer: str
    upstream: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewTurn:
    """An exchange to store with its answer's final write."""

    question: str
    answer: str
    upstream: str


async def add_turn(
    session: AsyncSession, conversation_id: int, answer_id: int | None, turn: NewTurn
) -> None:
    """Inside the answer's last write (no write of its own)."""
    session.add(
        TurnRow(
            conversation_id=conversation_id,
            answer_id=answer_id,
            upstream=clean(turn.upstream, 32),
            question=clean(turn.question, 1_000_000),
            answer=clean(turn.answer, 1_000_000),
            created_at=utcnow(),
        )
    )


async def forget_conversations(session: AsyncSession, conversation_ids: list[int]) -> None:
    await session.execute(delete(TurnRow).where(TurnRow.conversation_id.in_(conversation_ids)))


GAP = "\n[…]\n"


def _shortened(question: str, answer: str, max_chars: int) -> tuple[str, str] | None:
    """The exchange within `max_chars`: the answer's start and end around a gap; None when
    even the question does not leave room for a useful part of the answer."""
    room = max_chars - len(question) - len(GAP)
    if room < min(200, max_chars // 4):
        return None
    head = room * 2 // 3
    return question, answer[:head] + GAP + answer[len(answer) - (room - head) :]


class HistoryStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def recent(self, conversation_id: int, max_chars: int) -> list[StoredTurn]:
        """The newest whole turns within `max_chars`, oldest first; older ones are dropped
        first, and a turn that does not fit ends the history there. The newest turn alone too
        long for the budget is kept shortened (its start and end), not dropped: "shorten
        that" after one long answer still needs it."""
        query = (
            select(TurnRow)
            .where(TurnRow.conversation_id == conversation_id)
            .order_by(TurnRow.id.desc())
            .limit(READ_LIMIT)
        )
        kept: list[StoredTurn] = []
        used = 0
        async with self._db.reading() as session:
            for row in await session.scalars(query):
                size = len(row.question) + len(row.answer)
                if used + size > max_chars:
                    if not kept:
                        shortened = _shortened(row.question, row.answer, max_chars)
                        if shortened is not None:
                            kept.append(StoredTurn(*shortened, row.upstream, row.created_at))
                    break
                used += size
                kept.append(StoredTurn(row.question, row.answer, row.upstream, row.created_at))
        kept.reverse()
        return kept

    async def add(self, conversation_id: int, turn: NewTurn) -> None:
        """An exchange without an answer row (the terminal's `ask --continue`)."""
        async with self._db.writing() as session:
            await add_turn(session, conversation_id, None, turn)

    async def forget_chat(self, chat_id: int) -> int:
        """/forget: every conversation of the chat (all topics and members) loses its stored
        turns and starts afresh upstream; answers to questions asked before now are not stored
        when they end (on any instance). Returns how many turns were deleted."""
        async with self._db.writing() as session:
            ids = list(
                await session.scalars(
                    select(ConversationRow.id).where(ConversationRow.chat_id == chat_id)
                )
            )
            if not ids:
                return 0
            deleted = await session.execute(delete(TurnRow).where(TurnRow.conversation_id.in_(ids)))
            now = utcnow()
            await session.execute(
                update(ConversationRow)
                .where(ConversationRow.id.in_(ids))
                .values(
                    upstream_chat_id="",
                    token_fingerprint="",
                    title="",
                    updated_at=now,
                    forgotten_at=now,
                )
            )
            return int(getattr(deleted, "rowcount", 0) or 0)

    async def purge(self, older_than: datetime) -> int:
        """Retention: turns older than `older_than` are deleted."""
        async with self._db.writing() as session:
            result = await session.execute(delete(TurnRow).where(TurnRow.created_at < older_than))
            return int(getattr(result, "rowcount", 0) or 0)

    async def count(self, conversation_id: int | None = None) -> int:
        query = select(func.count(TurnRow.id))
        if conversation_id is not None:
            query = query.where(TurnRow.conversation_id == conversation_id)
        async with self._db.reading() as session:
            return int(await session.scalar(query) or 0)
