"""Tables. Portable types only: the same models run on SQLite and PostgreSQL."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Explicit names let Alembic's batch mode (SQLite) drop and recreate constraints.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit ids on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY (already 64-bit).
BigId = BigInteger().with_variant(Integer(), "sqlite")

NO_TOPIC = 0
SHARED = 0


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Always hands back aware UTC datetimes; SQLite stores them naive."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class AnswerStatus(enum.StrEnum):
    QUEUED = "queued"
    STREAMING = "streaming"
    DONE = "done"
    STOPPED = "stopped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


UNFINISHED_STATUSES = (AnswerStatus.QUEUED, AnswerStatus.STREAMING)


class ContextMode(enum.StrEnum):
    SHARED = "shared"
    PERSONAL = "personal"


def _one_of(column: str, values: type[enum.StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(str(member)) for member in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime()}


class ConversationRow(Base):
    """One Telegram chat (or topic, or member in personal mode) ↔ one upstream conversation."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("chat_id", "thread_id", "user_id", name="uq_conversations_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    thread_id: Mapped[int] = mapped_column(BigInteger, default=NO_TOPIC)
    user_id: Mapped[int] = mapped_column(BigInteger, default=SHARED)
    # The upstream (and login) that made `upstream_chat_id`: a conversation continues there only.
    upstream: Mapped[str] = mapped_column(String(32), default="hailuo", server_default="hailuo")
    upstream_chat_id: Mapped[str] = mapped_column(String(64), default="")
    character_id: Mapped[str] = mapped_column(String(16), default="1")
    token_fingerprint: Mapped[str] = mapped_column(String(32), default="")
    title: Mapped[str] = mapped_column(String(256), default="")
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # /forget: answers to questions asked before this are not stored (wherever they stream).
    forgotten_at: Mapped[datetime | None] = mapped_column(nullable=True)


class LoginRow(Base):
    """An upstream login. One row is current; the previous one waits until the new one works."""

    __tablename__ = "logins"
    # Ids are never reused, so a stale id can never mark a newer login as working.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    upstream: Mapped[str] = mapped_column(String(32), default="hailuo", server_default="hailuo")
    credentials: Mapped[dict[str, Any]] = mapped_column(JSON)
    fingerprint: Mapped[str] = mapped_column(String(32))
    is_current: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    source: Mapped[str] = mapped_column(String(32), default="")
    obtained_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    obtained_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_success_at: Mapped[datetime | None] = mapped_column(nullable=True)
    invalid_at: Mapped[datetime | None] = mapped_column(nullable=True)


class AnswerRow(Base):
    """One answer the bot gives; unfinished rows after a crash are what gets marked interrupted."""

    __tablename__ = "answers"
    __table_args__ = (
        CheckConstraint(_one_of("status", AnswerStatus), name="status"),
        Index("ix_answers_status", "status"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    chat_id: Mapped[int] = mapped_column(BigInteger)
    thread_id: Mapped[int] = mapped_column(BigInteger, default=NO_TOPIC)
    user_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    user_message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    bot_message_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    # The bot instance that streams it: only that instance marks it interrupted after a crash.
    instance_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=AnswerStatus.QUEUED)
    chars: Mapped[int] = mapped_column(Integer, default=0)
    error_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    first_text_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)


class TurnRow(Base):
    """One exchange of a conversation as sent and shown: the history an upstream that keeps no
    conversation (the API) is sent, kept for every upstream so that failover and /new behave
    the same everywhere. Purged after HISTORY_RETENTION_DAYS, on /new and on /forget."""

    __tablename__ = "turns"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    answer_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    upstream: Mapped[str] = mapped_column(String(32), default="")
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ChatSettingsRow(Base):
    __tablename__ = "chat_settings"
    __table_args__ = (CheckConstraint(_one_of("context_mode", ContextMode), name="context_mode"),)

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    context_mode: Mapped[str] = mapped_column(String(16), default=ContextMode.SHARED)
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    # The model picked with /model, valid on `model_upstream` only (names differ per upstream).
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    model_upstream: Mapped[str | None] = mapped_column(String(32), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserSettingsRow(Base):
    """Per-user choices, such as the language picked with /lang."""

    __tablename__ = "user_settings"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
