"""Hostile members, careless operators and misbehaving servers: who may stop or reset what,
where admin commands answer, secrets that must not leak, and values the database would refuse."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from aiogram.types import User

from bot.storage.answers import AnswerStore, ConversationUpdate
from bot.storage.conversations import ConversationKey, ConversationStore
from bot.storage.database import Database
from bot.storage.models import AnswerStatus
from bot.telegram.languages import MAX_SEEN, Languages
from tests.bridge_env import ADMIN, running_bridge
from tests.conftest import free_port
from tests.standins.hailuo import Fault, HailuoStandIn
from tests.standins.telegram import TelegramStandIn

ALICE, BOB, CAROL = 2701, 2702, 2703  # Alice administers the group
GROUP, OTHER_GROUP = -1002700, -1002701
ANONYMOUS_ADMIN = 1087968824  # Telegram's GroupAnonymousBot


def setup(telegram: TelegramStandIn) -> None:
    for user, name in ((ALICE, "Alice"), (BOB, "Bob"), (CAROL, "Carol"), (ADMIN, "Admin")):
        telegram.add_private_chat(user, name)
    telegram.add_user(ANONYMOUS_ADMIN, "Group")
    telegram.add_group(GROUP, "Team", admins={ALICE, ADMIN})
    telegram.add_group(OTHER_GROUP, "Other", admins={ALICE})


def texts(telegram: TelegramStandIn, chat_id: int) -> list[str]:
    return [message.text for message in telegram.bot_messages(chat_id)]


def said(telegram: TelegramStandIn, chat_id: int, words: str) -> bool:
    return any(words in text for text in texts(telegram, chat_id))


async def test_stop_follows_the_buttons_rule(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    """Carol's /stop does not stop Bob's answer; Bob's does; an admin's stops anyone's."""
    setup(telegram)
    hailuo.answer_next("bob " * 300, "carol " * 300)
    hailuo.chunk_count, hailuo.chunk_delay = 150, 0.05
    async with running_bridge(tmp_path, telegram, hailuo):
        await telegram.send_text(GROUP, BOB, "/ask a long one")
        await telegram.wait_for(lambda: said(telegram, GROUP, "bob bob"), what="Bob's answer")
        await telegram.send_text(GROUP, CAROL, "/stop")
        await telegram.wait_for(
            lambda: said(telegram, GROUP, "Nothing is being written"), what="refusal"
        )
        assert not said(telegram, GROUP, "Stopped")
        await telegram.send_text(GROUP, BOB, "/stop")
        await telegram.wait_for(lambda: said(telegram, GROUP, "Stopped"), what="Bob stopped")
        await telegram.send_text(GROUP, CAROL, "/ask another")
        await telegram.wait_for(lambda: said(telegram, GROUP, "carol carol"), what="Carol's")
        await telegram.send_text(GROUP, ALICE, "/stop")
        await telegram.wait_for(
            lambda: sum("Stopped" in text for text in texts(telegram, GROUP)) == 2,
            what="the admin's stop",
        )


async def test_only_group_admins_reset_a_shared_conversation(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    setup(telegram)
    async with running_bridge(tmp_path, telegram, hailuo):
        await telegram.send_text(GROUP, BOB, "/ask first")
        await telegram.wait_for(lambda: said(telegram, GROUP, "You said"), what="an answer")
        await telegram.send_text(GROUP, BOB, "/new")
        await telegram.wait_for(lambda: said(telegram, GROUP, "only a group admin"), what="no")
        await telegram.send_text(GROUP, BOB, "/ask second")
        await telegram.wait_for(lambda: said(telegram, GROUP, "(message 2"), what="continued")
        await telegram.send_text(GROUP, ALICE, "/new")
        await telegram.wait_for(lambda: said(telegram, GROUP, "fresh conversation"), what="reset")


async def test_admin_commands_answer_only_in_private_chats(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    """In a group even an admin's /login starts nothing: the group would see the login link
    and the screenshots."""
    setup(telegram)
    async with running_bridge(tmp_path, telegram, hailuo, login_url="https://vnc.example/secret"):
        await telegram.send_text(GROUP, ADMIN, "/login")
        await telegram.wait_for(lambda: said(telegram, GROUP, "private chat"), what="refusal")
        await telegram.send_text(GROUP, ADMIN, "/status")
        await telegram.wait_for(lambda: len(texts(telegram, GROUP)) == 2, what="user status")
        message_id = telegram.bot_messages(GROUP)[0].message_id
        await telegram.press_button(GROUP, message_id, ADMIN, "login:shot")
        await telegram.wait_for(lambda: telegram.callback_answers, what="the button answered")
    everything = "\n".join(texts(telegram, GROUP))
    assert "vnc.example" not in everything
    assert "Last upstream error" not in everything, "no admin status in a group"
    assert not telegram.calls_of("sendPhoto")


async def test_forged_button_data_is_answered_and_changes_nothing(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    setup(telegram)
    async with running_bridge(tmp_path, telegram, hailuo):
        await telegram.send_text(GROUP, BOB, "/ask hello")
        await telegram.wait_for(lambda: said(telegram, GROUP, "You said"), what="an answer")
        message_id = telegram.bot_messages(GROUP)[0].message_id
        for data in ("stop:abc", "stop:", "stop:٣", "stop:-1"):
            await telegram.press_button(GROUP, message_id, BOB, data)
        await telegram.wait_for(lambda: len(telegram.callback_answers) == 4, what="answers")


async def test_anonymous_admins_of_different_groups_have_their_own_limit(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    """Anonymous admins all post as one Telegram user: the limit counts per group instead."""
    setup(telegram)
    async with running_bridge(tmp_path, telegram, hailuo, questions_per_minute=1):
        for group in (GROUP, OTHER_GROUP):
            sender = telegram.chats[group].as_dict()
            await telegram.send_text(
                group, ANONYMOUS_ADMIN, "/ask as the group", extra={"sender_chat": sender}
            )
        await telegram.wait_for(
            lambda: said(telegram, GROUP, "You said") and said(telegram, OTHER_GROUP, "You said"),
            what="both groups answered",
        )


async def test_a_proxy_password_never_reaches_logs_messages_or_the_database(
    tmp_path: Path,
    telegram: TelegramStandIn,
    hailuo: HailuoStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    setup(telegram)
    password = "pr0xy-Passw0rd-secret"
    proxy = f"http://proxyuser:{password}@127.0.0.1:{free_port()}"  # nothing listens there
    caplog.set_level(logging.DEBUG)
    async with running_bridge(tmp_path, telegram, hailuo, hailuo_proxy=proxy) as env:
        await telegram.send_text(ALICE, ALICE, "hello")
        await telegram.wait_for(lambda: texts(telegram, ALICE), what="the error note")
        await telegram.send_text(ADMIN, ADMIN, "/status")
        await telegram.wait_for(lambda: texts(telegram, ADMIN), what="/status")
        await env.stop()
        answer = await AnswerStore(env.app.database).get(1)
    assert answer is not None and answer.status is AnswerStatus.FAILED
    everything = "\n".join(
        [caplog.text, *texts(telegram, ALICE), *texts(telegram, ADMIN), str(answer)]
    )
    assert password not in everything
    assert "proxyuser" not in "\n".join(texts(telegram, ALICE))


async def test_a_challenge_page_does_not_kill_the_login(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    setup(telegram)
    hailuo.fail_next(Fault.CHALLENGE_403)
    async with running_bridge(tmp_path, telegram, hailuo) as env:
        await telegram.send_text(ALICE, ALICE, "one")
        await telegram.wait_for(lambda: texts(telegram, ALICE), what="a note")
        await telegram.send_text(ALICE, ALICE, "two")
        await telegram.wait_for(lambda: said(telegram, ALICE, "You said: two"), what="answer")
        login = await env.app.bridge.logins.current()
    assert login is not None and login.record.invalid_at is None
    assert texts(telegram, ADMIN) == [], "no admin was told to log in again"


async def test_values_the_database_would_refuse_are_cleaned_and_the_answer_closed(
    database: Database,
) -> None:
    """A title with U+0000 and an upstream id over 64 characters (PostgreSQL refuses the first,
    the column the second) must not leave the answer `streaming`."""
    answers = AnswerStore(database)
    record, answer_id = await answers.begin(
        ConversationKey(-100123), chat_id=-100123, thread_id=0, user_id=1, user_message_id=1
    )
    await answers.finish(
        answer_id,
        AnswerStatus.DONE,
        chars=5,
        bot_message_ids=[7],
        error_text="bad\x00words",
        conversation=ConversationUpdate(
            conversation_id=record.id,
            upstream_chat_id="x" * 80,
            token_fingerprint="f",
            title="A\x00title",
            upstream="hailuo",
        ),
    )
    saved = await answers.get(answer_id)
    conversation = await ConversationStore(database).get(ConversationKey(-100123))
    assert saved is not None and saved.status is AnswerStatus.DONE
    assert conversation is not None
    assert conversation.title == "Atitle"
    assert conversation.upstream_chat_id == "", "the next question starts afresh"


def test_the_language_cache_is_bounded() -> None:
    languages = Languages(None)  # type: ignore[arg-type]  # the cache needs no database
    for user_id in range(MAX_SEEN + 500):
        user = User(id=user_id, is_bot=False, first_name="x", language_code="ru")
        languages.for_event(user, None)
    assert languages.for_user(MAX_SEEN + 499).language == "ru"
    assert len(languages._seen) == MAX_SEEN


async def test_one_limit_for_everything_and_one_refusal_per_window(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    """25 /help from Carol count against her limit like questions; she is told once; Bob is
    answered all the same."""
    setup(telegram)
    async with running_bridge(tmp_path, telegram, hailuo, questions_per_minute=3):
        for _ in range(25):
            await telegram.send_text(GROUP, CAROL, "/help")
        await telegram.send_text(GROUP, BOB, "/ask are you there?")
        await telegram.wait_for(lambda: said(telegram, GROUP, "You said: Bob"), what="Bob")
        await telegram.wait_for(lambda: said(telegram, GROUP, "faster than I can"), what="told")
    replies_to_carol = [m for m in telegram.bot_messages(GROUP) if "You said" not in m.text]
    assert len(replies_to_carol) == 4, "three helps and one refusal"
    assert sum("faster than I can" in m.text for m in replies_to_carol) == 1


async def test_a_group_has_a_limit_of_its_own(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    setup(telegram)
    async with running_bridge(tmp_path, telegram, hailuo, chat_requests_per_minute=2):
        for user in (BOB, CAROL, ALICE):
            await telegram.send_text(GROUP, user, f"/ask from {user}")
        await telegram.wait_for(lambda: said(telegram, GROUP, "faster than I can"), what="told")
        await telegram.wait_for(
            lambda: sum("You said" in text for text in texts(telegram, GROUP)) == 2,
            what="two answers",
        )


async def test_a_full_conversation_queue_refuses_more(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    setup(telegram)
    hailuo.chunk_count, hailuo.chunk_delay = 20, 0.1
    async with running_bridge(tmp_path, telegram, hailuo, queue_max_depth=2):
        for text in ("one", "two", "three", "four"):
            await telegram.send_text(ALICE, ALICE, text)
        await telegram.wait_for(lambda: said(telegram, ALICE, "Too many requests"), what="told")
        await telegram.wait_for(lambda: said(telegram, ALICE, "You said: three"), what="three")
    assert not said(telegram, ALICE, "You said: four")
    assert [r.fields["msgContent"] for r in hailuo.requests] == ["one", "two", "three"]
