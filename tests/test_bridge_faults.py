"""When things go wrong: the user is told, nothing is lost, other chats carry on."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.storage.answers import AnswerStore
from bot.storage.conversations import ConversationKey, ConversationStore
from bot.storage.database import Database
from bot.storage.migrations import ensure_schema
from bot.storage.models import AnswerStatus
from tests.bridge_env import ADMIN, running_bridge
from tests.conftest import sqlite_url
from tests.standins.hailuo import Fault, HailuoStandIn
from tests.standins.telegram import Limits, TelegramStandIn

ALICE, BOB = 701, 702
GROUP = -1001700


def chats(telegram: TelegramStandIn) -> None:
    telegram.add_private_chat(ALICE, "Alice")
    telegram.add_private_chat(BOB, "Bob")
    telegram.add_private_chat(ADMIN, "Admin")


def last_text(telegram: TelegramStandIn, chat_id: int) -> str:
    messages = telegram.bot_messages(chat_id)
    return messages[-1].text if messages else ""


async def test_expired_login_tells_users_and_admins_once(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    chats(telegram)
    async with running_bridge(tmp_path, telegram, hailuo) as env:
        await telegram.send_text(ALICE, ALICE, "works")
        await telegram.wait_for(lambda: "You said" in last_text(telegram, ALICE), what="answer")
        hailuo.valid_tokens.clear()  # the login expires upstream
        await telegram.send_text(ALICE, ALICE, "still there?")
        await telegram.send_text(BOB, BOB, "hello?")
        await telegram.wait_for(lambda: "expired" in last_text(telegram, ALICE), what="Alice told")
        await telegram.wait_for(lambda: "expired" in last_text(telegram, BOB), what="Bob told")
        await telegram.wait_for(lambda: telegram.bot_messages(ADMIN), what="admin told")
        await asyncio.sleep(0.5)  # a second notification would have been sent by now
        record = await ConversationStore(env.app.database).get(ConversationKey(ALICE))
    admin_messages = telegram.bot_messages(ADMIN)
    assert len(admin_messages) == 1
    assert "/login" in admin_messages[0].text
    assert env.auth.fingerprint in admin_messages[0].text
    assert env.auth.token not in admin_messages[0].text
    assert record is not None
    assert record.upstream_chat_id, "the conversation row is intact"


async def test_no_login_at_all_is_explained(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    chats(telegram)
    async with running_bridge(tmp_path, telegram, hailuo, login=False):
        await telegram.send_text(ALICE, ALICE, "anyone?")
        await telegram.send_text(BOB, BOB, "hello?")
        await telegram.wait_for(lambda: "logged in" in last_text(telegram, ALICE), what="Alice")
        await telegram.wait_for(lambda: "logged in" in last_text(telegram, BOB), what="Bob")
        await telegram.wait_for(lambda: telegram.bot_messages(ADMIN), what="admin told")
    assert len(telegram.bot_messages(ADMIN)) == 1
    assert hailuo.requests == []


async def test_outage_and_rate_limit_get_retry_hints_and_the_next_question_works(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    chats(telegram)
    hailuo.fail_next(Fault.SERVER_ERROR, Fault.RATE_LIMITED)
    async with running_bridge(tmp_path, telegram, hailuo):
        await telegram.send_text(ALICE, ALICE, "one")
        await telegram.wait_for(lambda: "can't be reached" in last_text(telegram, ALICE))
        await telegram.send_text(ALICE, ALICE, "two")
        await telegram.wait_for(lambda: "rate limiting" in last_text(telegram, ALICE))
        await telegram.send_text(ALICE, ALICE, "three")
        await telegram.wait_for(lambda: "You said: three" in last_text(telegram, ALICE))
    assert "7 seconds" in telegram.bot_messages(ALICE)[1].text


async def test_interrupted_stream_keeps_the_partial_answer(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    chats(telegram)
    hailuo.fail_next(Fault.DISCONNECT_MID_STREAM)
    async with running_bridge(tmp_path, telegram, hailuo) as env:
        await telegram.send_text(ALICE, ALICE, "tell me")
        await telegram.wait_for(lambda: "interrupted" in last_text(telegram, ALICE))
        await telegram.wait_for(lambda: not env.app.bridge.service.running, what="saved")
        record = await ConversationStore(env.app.database).get(ConversationKey(ALICE))
        assert record is not None
        history = await AnswerStore(env.app.database).for_conversation(record.id)
    text = last_text(telegram, ALICE)
    assert text.startswith("You said")
    assert text.endswith("please send your question again.")
    assert history[-1].status is AnswerStatus.INTERRUPTED
    assert record.upstream_chat_id, "the conversation started upstream is remembered"


async def test_deleted_streaming_message_continues_in_a_new_one(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    telegram.add_user(ALICE, "Alice")
    telegram.add_group(GROUP, "Team")
    hailuo.answer_next("piece " * 300)
    hailuo.chunk_count, hailuo.chunk_delay = 60, 0.15
    async with running_bridge(tmp_path, telegram, hailuo):
        await telegram.send_text(GROUP, ALICE, "/ask go on")
        first = (await telegram.wait_for(lambda: telegram.bot_messages(GROUP)))[0]
        telegram.delete_by_user(GROUP, first.message_id)
        await telegram.wait_for(
            lambda: any(
                m.reply_markup is None and m.text.count("piece") == 300
                for m in telegram.bot_messages(GROUP)
            ),
            what="the complete answer in a new message",
        )
    assert telegram.rate_limited == []


async def test_a_user_who_blocked_the_bot_does_not_stop_others(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    chats(telegram)
    telegram.blocked.add(ALICE)
    async with running_bridge(tmp_path, telegram, hailuo) as env:
        await telegram.send_text(ALICE, ALICE, "I blocked you")
        await telegram.send_text(BOB, BOB, "I did not")
        await telegram.wait_for(lambda: "You said" in last_text(telegram, BOB), what="Bob")
        await telegram.wait_for(lambda: not env.app.bridge.service.running, what="all done")
    assert telegram.bot_messages(ALICE) == []


async def test_answers_left_streaming_by_a_crash_are_marked_on_start(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    telegram.add_user(ALICE, "Alice")
    telegram.add_group(GROUP, "Team")
    url = sqlite_url(tmp_path)
    question = await telegram.send_text(GROUP, ALICE, "/ask before the crash")
    telegram.drop_pending_updates()  # delivered to the process that crashed
    database = Database(url)
    await ensure_schema(database, auto_migrate=True)
    _, answer_id = await AnswerStore(database).begin(
        ConversationKey(GROUP), chat_id=GROUP, thread_id=0, user_id=ALICE, user_message_id=question
    )
    await database.close()

    async with running_bridge(tmp_path, telegram, hailuo, database_url=url) as env:
        notice = await telegram.wait_for(lambda: telegram.bot_messages(GROUP), what="notice")
        stored = await AnswerStore(env.app.database).get(answer_id)
    assert "restart" in notice[0].text
    assert notice[0].reply_to == question
    assert stored is not None
    assert stored.status is AnswerStatus.INTERRUPTED


async def test_graceful_shutdown_marks_unfinished_answers(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    chats(telegram)
    hailuo.answer_next("slow " * 1000)
    hailuo.chunk_count, hailuo.chunk_delay = 500, 0.1
    async with running_bridge(tmp_path, telegram, hailuo, shutdown_grace=0.5) as env:
        await telegram.send_text(ALICE, ALICE, "take your time")
        await telegram.wait_for(lambda: telegram.draft_frames(ALICE), what="streaming")
        await env.stop()
    final = last_text(telegram, ALICE)
    assert final.startswith("slow slow")
    assert final.endswith("Interrupted by a restart — please send your question again.")


async def test_telegram_429_pauses_the_chat_and_the_answer_still_arrives(
    tmp_path: Path, hailuo: HailuoStandIn
) -> None:
    strict = TelegramStandIn("123456:TEST-bot-token-secret", Limits(chat_interval=2.5))
    await strict.start()
    try:
        strict.add_private_chat(ALICE, "Alice")
        hailuo.answer_next("drip " * 200)
        hailuo.chunk_count, hailuo.chunk_delay = 40, 0.1
        async with running_bridge(tmp_path, strict, hailuo) as env:
            await strict.send_text(ALICE, ALICE, "go")
            await strict.wait_for(lambda: last_text(strict, ALICE).count("drip") == 200)
            await strict.wait_for(lambda: not env.app.bridge.service.running, what="saved")
    finally:
        await strict.stop()
    refused = strict.rate_limited
    assert refused, "the stricter stand-in should have said 429 at least once"
    calls = [c for c in strict.calls if c.method in ("sendMessageDraft", "sendMessage")]
    for refusal in refused:
        retry_after = 1.0  # what the stand-in asks for
        later = [c for c in calls if refusal.at < c.at < refusal.at + retry_after - 0.05]
        assert later == [], "nothing may be sent to the chat before retry_after has passed"
