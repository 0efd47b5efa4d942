"""The storage layer on real database files (and a real PostgreSQL server where available)."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.storage.answers import AnswerStore
from bot.storage.chat_settings import ChatSettingsStore
from bot.storage.conversations import ConversationKey, ConversationStore
from bot.storage.database import Database, sqlite_path
from bot.storage.logins import LoginStore
from bot.storage.migrations import ensure_schema
from bot.storage.models import AnswerStatus, ContextMode
from tests.conftest import sqlite_url

GROUP = -1001234567890  # supergroup ids do not fit in 32 bits


async def test_each_chat_topic_and_member_has_its_own_conversation(database: Database) -> None:
    store = ConversationStore(database)
    keys = [
        ConversationKey(GROUP),
        ConversationKey(GROUP, thread_id=7),
        ConversationKey(GROUP, thread_id=7, user_id=42),
        ConversationKey(42),
    ]
    records = [await store.get_or_create(key) for key in keys]
    assert len({record.id for record in records}) == 4
    assert [record.key for record in records] == keys
    assert (await store.get_or_create(keys[1])).id == records[1].id
    assert await store.count() == 4


async def test_concurrent_first_messages_create_one_conversation(database: Database) -> None:
    store = ConversationStore(database)
    key = ConversationKey(GROUP, thread_id=3)
    records = await asyncio.gather(*(store.get_or_create(key) for _ in range(20)))
    assert len({record.id for record in records}) == 1
    assert await store.count() == 1


async def test_answer_is_recorded_and_reset_keeps_history(database: Database) -> None:
    conversations, answers = ConversationStore(database), AnswerStore(database)
    key = ConversationKey(42)
    conversation, answer_id = await answers.begin(
        key, chat_id=42, thread_id=0, user_id=42, user_message_id=10
    )
    assert conversation == await conversations.get(key), "begin made the conversation"
    await answers.first_text(answer_id, [11])
    await conversations.record_answer(
        conversation.id, upstream_chat_id="380000", token_fingerprint="abc", title="Greetings"
    )
    await answers.finish(answer_id, AnswerStatus.DONE, chars=120, bot_message_ids=[11, 12])

    stored = await conversations.get(key)
    assert stored is not None
    assert (stored.upstream_chat_id, stored.title, stored.message_count) == (
        "380000",
        "Greetings",
        1,
    )

    assert await conversations.reset(key)
    fresh = await conversations.get(key)
    assert fresh is not None
    assert (fresh.id, fresh.upstream_chat_id, fresh.title) == (conversation.id, "", "")
    assert fresh.message_count == 1
    history = await answers.for_conversation(conversation.id)
    assert [(a.status, a.chars, a.bot_message_ids) for a in history] == [
        (AnswerStatus.DONE, 120, (11, 12))
    ]
    assert history[0].finished_at is not None
    assert history[0].first_text_at is not None


async def test_unfinished_answers_are_found_and_marked(database: Database) -> None:
    conversations, answers = ConversationStore(database), AnswerStore(database)
    ids = [
        (
            await answers.begin(
                ConversationKey(GROUP), chat_id=GROUP, thread_id=0, user_id=1, user_message_id=n
            )
        )[1]
        for n in range(3)
    ]
    assert await conversations.count() == 1
    await answers.finish(ids[0], AnswerStatus.DONE, chars=5, bot_message_ids=[100])
    left = await answers.unfinished()
    assert [answer.id for answer in left] == ids[1:]

    await answers.mark_interrupted([answer.id for answer in left])
    assert await answers.unfinished() == []
    counts = await answers.counts_by_status()
    assert counts[AnswerStatus.INTERRUPTED] == 2
    assert counts[AnswerStatus.DONE] == 1
    with pytest.raises(ValueError, match="not a final status"):
        await answers.finish(ids[0], AnswerStatus.STREAMING, chars=0, bot_message_ids=[])


async def test_group_migrated_to_supergroup_keeps_its_conversation(database: Database) -> None:
    conversations, settings = ConversationStore(database), ChatSettingsStore(database)
    old, new = -4001, -1004001
    original = await conversations.get_or_create(ConversationKey(old))
    await conversations.record_answer(original.id, upstream_chat_id="555", token_fingerprint="f")
    await settings.set_context_mode(old, ContextMode.PERSONAL)

    assert await conversations.move_chat(old, new) == 1
    assert await conversations.move_chat(old, new) == 0  # the second service message is harmless

    moved = await conversations.get(ConversationKey(new))
    assert moved is not None
    assert (moved.id, moved.upstream_chat_id) == (original.id, "555")
    assert await conversations.get(ConversationKey(old)) is None
    assert (await settings.get(new)).context_mode is ContextMode.PERSONAL


async def test_context_mode_defaults_to_shared_and_can_switch(database: Database) -> None:
    settings = ChatSettingsStore(database)
    assert (await settings.get(GROUP)).context_mode is ContextMode.SHARED
    await settings.set_context_mode(GROUP, ContextMode.PERSONAL)
    await settings.set_context_mode(GROUP, ContextMode.PERSONAL)
    assert (await settings.get(GROUP)).context_mode is ContextMode.PERSONAL
    await settings.set_context_mode(GROUP, ContextMode.SHARED)
    assert (await settings.get(GROUP)).context_mode is ContextMode.SHARED


async def test_previous_login_is_kept_until_the_new_one_works(database: Database) -> None:
    logins = LoginStore(database)
    first = await logins.save({"token": "one"}, fingerprint="fp1", source="import")
    await logins.mark_success(first.id)

    second = await logins.save({"token": "two"}, fingerprint="fp2", source="login", obtained_by=7)
    current, previous = await logins.current(), await logins.previous()
    assert current is not None
    assert previous is not None
    assert (current.fingerprint, current.obtained_by) == ("fp2", 7)
    assert previous.fingerprint == "fp1"

    # A third login before the second ever worked: the proven first one stays the fallback.
    await logins.save({"token": "three"}, fingerprint="fp3", source="login")
    previous = await logins.previous()
    assert previous is not None
    assert previous.fingerprint == "fp1"

    current = await logins.current()
    assert current is not None
    await logins.mark_success(current.id)
    assert await logins.previous() is None
    assert current.fingerprint == "fp3"
    assert second.id != current.id


async def test_invalid_login_is_reported_once(database: Database) -> None:
    logins = LoginStore(database)
    login = await logins.save({"token": "t"}, fingerprint="fp", source="import")
    assert await logins.mark_invalid(login.id)
    assert not await logins.mark_invalid(login.id)
    current = await logins.current()
    assert current is not None
    assert current.invalid_at is not None
    await logins.mark_success(login.id)
    current = await logins.current()
    assert current is not None
    assert current.invalid_at is None
    assert "'t'" not in repr(current)
    assert await logins.delete_all() == 1
    assert await logins.current() is None


async def test_many_concurrent_writers_never_see_a_locked_database(database_url: str) -> None:
    """50 chats answering at once in this process, plus a second process-like engine."""
    bot_db, cli_db = Database(database_url), Database(database_url)
    try:
        await ensure_schema(bot_db, auto_migrate=True)
        conversations, answers = ConversationStore(bot_db), AnswerStore(bot_db)
        other_logins = LoginStore(cli_db)

        async def chat(chat_id: int) -> None:
            for turn in range(4):
                conversation, answer_id = await answers.begin(
                    ConversationKey(chat_id),
                    chat_id=chat_id,
                    thread_id=0,
                    user_id=chat_id,
                    user_message_id=turn,
                )
                await answers.first_text(answer_id, [turn])
                await conversations.record_answer(
                    conversation.id, upstream_chat_id=str(chat_id), token_fingerprint="fp"
                )
                await answers.finish(answer_id, AnswerStatus.DONE, chars=10, bot_message_ids=[turn])

        async def admin() -> None:
            for index in range(20):
                saved = await other_logins.save({"n": index}, fingerprint=f"f{index}", source="t")
                await other_logins.mark_success(saved.id)

        await asyncio.gather(*(chat(1000 + n) for n in range(50)), admin())

        counts = await answers.counts_by_status()
        assert counts[AnswerStatus.DONE] == 200
        assert await conversations.count() == 50
        record = await conversations.get(ConversationKey(1000))
        assert record is not None
        assert record.message_count == 4
        current = await LoginStore(bot_db).current()
        assert current is not None
        assert current.fingerprint == "f19"
    finally:
        await bot_db.close()
        await cli_db.close()


async def test_data_survives_a_restart(database_url: str) -> None:
    first = Database(database_url)
    await ensure_schema(first, auto_migrate=True)
    conversation = await ConversationStore(first).get_or_create(ConversationKey(GROUP, 5))
    await ConversationStore(first).record_answer(
        conversation.id, upstream_chat_id="999", token_fingerprint="fp"
    )
    await LoginStore(first).save({"token": "kept"}, fingerprint="fpk", source="import")
    await first.close()

    second = Database(database_url)
    try:
        await ensure_schema(second, auto_migrate=True)
        again = await ConversationStore(second).get(ConversationKey(GROUP, 5))
        assert again is not None
        assert again.upstream_chat_id == "999"
        login = await LoginStore(second).current()
        assert login is not None
        assert login.credentials == {"token": "kept"}
    finally:
        await second.close()


async def test_sqlite_file_is_private_to_its_owner(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "fresh")
    database = Database(url)
    try:
        await ensure_schema(database, auto_migrate=True)
        await ConversationStore(database).get_or_create(ConversationKey(1))
        path = sqlite_path(url)
        assert path is not None
        for file in (path, Path(f"{path}-wal")):
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        await database.close()


async def test_sqlite_pragmas_are_set(tmp_path: Path) -> None:
    database = Database(sqlite_url(tmp_path))
    try:
        async with database.reading() as session:
            pragmas = {
                name: (await session.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            }
        assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30000}
    finally:
        await database.close()


@pytest.mark.postgres
async def test_a_postgres_statement_that_stalls_fails_within_its_deadline() -> None:
    """A statement the server does not finish (a lock, a stalled server) cannot hold a
    conversation's turn forever: it fails after the command timeout, as an error the outage
    retry knows, and the connection pool keeps working."""
    from bot.storage.retry import transient
    from tests.conftest import scratch_postgres_database

    async with scratch_postgres_database() as url:
        database = Database(url, command_timeout=1.0)
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(Exception) as caught:  # noqa: PT011 - the driver's own type
                async with asyncio.timeout(30), database.reading() as session:
                    await session.execute(text("SELECT pg_sleep(20)"))
            assert loop.time() - started < 15
            assert transient(caught.value), repr(caught.value)
            async with database.reading() as session:
                assert await session.scalar(text("SELECT 1")) == 1
        finally:
            await database.close()
