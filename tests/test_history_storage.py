"""Stored history on real databases (SQLite files, and PostgreSQL where the suite has one):
turns saved with the answer's final write, read back within a budget, deleted by /new, /forget
and retention; a chat's model choice."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from bot.storage.answers import AnswerStore, ConversationUpdate
from bot.storage.chat_settings import ChatSettingsStore
from bot.storage.conversations import ConversationKey, ConversationStore
from bot.storage.database import Database
from bot.storage.history import HistoryStore, NewTurn
from bot.storage.models import AnswerStatus, TurnRow, utcnow

GROUP = -1001234567890


async def _exchange(database: Database, key: ConversationKey, question: str, answer: str) -> None:
    answers = AnswerStore(database)
    answer_id = await answers.enqueue(
        key, chat_id=key.chat_id, thread_id=key.thread_id, user_id=1, user_message_id=1
    )
    await answers.finish(
        answer_id,
        AnswerStatus.DONE,
        chars=len(answer),
        bot_message_ids=[2],
        turn=NewTurn(question, answer, "minimax-api"),
    )


async def test_turns_come_back_oldest_first_within_the_budget(database: Database) -> None:
    key = ConversationKey(42)
    for n in range(5):
        await _exchange(database, key, f"q{n}", f"answer {n} " + "x" * 90)
    conversation = await ConversationStore(database).get(key)
    assert conversation is not None
    history = HistoryStore(database)
    everything = await history.recent(conversation.id, 10_000)
    assert [turn.question for turn in everything] == ["q0", "q1", "q2", "q3", "q4"]
    size = len(everything[0].question) + len(everything[0].answer)
    # Whole turns only: two and a half turns' worth keeps the newest two.
    kept = await history.recent(conversation.id, size * 2 + size // 2)
    assert [turn.question for turn in kept] == ["q3", "q4"]
    # The newest exchange alone over the budget is sent shortened (start and end), not dropped.
    [short] = await history.recent(conversation.id, size - 1)
    assert short.question == "q4"
    assert len(short.question) + len(short.answer) <= size - 1
    assert short.answer.startswith("answer 4") and short.answer.endswith("x")
    assert "[…]" in short.answer


async def test_a_question_too_long_for_the_budget_is_not_cut(database: Database) -> None:
    key = ConversationKey(42)
    await _exchange(database, key, "q" * 3000, "short answer")
    conversation = await ConversationStore(database).get(key)
    assert conversation is not None
    assert await HistoryStore(database).recent(conversation.id, 1000) == []


async def test_new_deletes_the_conversations_turns_only(database: Database) -> None:
    here, there = ConversationKey(GROUP, thread_id=3), ConversationKey(GROUP, thread_id=4)
    await _exchange(database, here, "a", "b")
    await _exchange(database, there, "c", "d")
    assert await ConversationStore(database).reset(here)
    history = HistoryStore(database)
    conversations = ConversationStore(database)
    here_row, there_row = await conversations.get(here), await conversations.get(there)
    assert here_row is not None
    assert there_row is not None
    assert await history.count(here_row.id) == 0
    assert await history.count(there_row.id) == 1


async def test_forget_deletes_every_conversation_of_the_chat(database: Database) -> None:
    for thread in (0, 3, 4):
        await _exchange(database, ConversationKey(GROUP, thread_id=thread), "q", "a")
    await _exchange(database, ConversationKey(42), "mine", "kept")
    history = HistoryStore(database)
    assert await history.forget_chat(GROUP) == 3
    assert await history.count() == 1
    assert await history.forget_chat(GROUP) == 0


async def test_an_answer_to_a_question_asked_before_forget_is_not_stored(
    database: Database,
) -> None:
    """/forget while an answer streams (on any instance): its exchange is not stored and its
    upstream conversation not remembered; a question asked after /forget is."""
    answers, conversations = AnswerStore(database), ConversationStore(database)
    key = ConversationKey(GROUP, thread_id=5)
    before = await answers.enqueue(key, chat_id=GROUP, thread_id=5, user_id=1, user_message_id=1)
    assert await HistoryStore(database).forget_chat(GROUP) == 0
    after = await answers.enqueue(key, chat_id=GROUP, thread_id=5, user_id=1, user_message_id=2)
    conversation = await conversations.get(key)
    assert conversation is not None
    for answer_id, text in ((before, "before"), (after, "after")):
        await answers.finish(
            answer_id,
            AnswerStatus.DONE,
            chars=len(text),
            bot_message_ids=[],
            conversation=ConversationUpdate(conversation.id, f"web-{text}", "fp"),
            turn=NewTurn(text, text, "minimax-agent"),
        )
    kept = await HistoryStore(database).recent(conversation.id, 1000)
    assert [turn.question for turn in kept] == ["after"]
    stored = await conversations.get(key)
    assert stored is not None
    assert stored.upstream_chat_id == "web-after"
    assert [a.status for a in await answers.for_conversation(conversation.id)] == [
        AnswerStatus.DONE,
        AnswerStatus.DONE,
    ]


async def test_retention_purges_old_turns(database: Database) -> None:
    key = ConversationKey(42)
    await _exchange(database, key, "old", "a")
    await _exchange(database, key, "new", "b")
    async with database.writing() as session:
        await session.execute(
            update(TurnRow)
            .where(TurnRow.question == "old")
            .values(created_at=utcnow() - timedelta(days=40))
        )
    history = HistoryStore(database)
    assert await history.purge(utcnow() - timedelta(days=30)) == 1
    conversation = await ConversationStore(database).get(key)
    assert conversation is not None
    assert [turn.question for turn in await history.recent(conversation.id, 1000)] == ["new"]


async def test_turn_text_is_stored_whole_and_clean(database: Database) -> None:
    key = ConversationKey(42)
    long_answer = "ж" * 70_000 + "\x00end"
    await _exchange(database, key, "Ann: hi\x00", long_answer)
    conversation = await ConversationStore(database).get(key)
    assert conversation is not None
    (turn,) = await HistoryStore(database).recent(conversation.id, 100_000)
    assert turn.question == "Ann: hi"
    assert turn.answer == "ж" * 70_000 + "end"


async def test_a_chat_model_counts_only_on_its_upstream(database: Database) -> None:
    store = ChatSettingsStore(database)
    await store.set_model(42, "minimax-api", "MiniMax-M2.5")
    chosen = await store.get(42)
    assert chosen.model_for("minimax-api") == "MiniMax-M2.5"
    assert chosen.model_for("minimax-agent") is None
    await store.set_model(42, "minimax-api", None)
    assert (await store.get(42)).model_for("minimax-api") is None
