"""Each person is answered in their language; Hailuo gets their words untouched."""

from __future__ import annotations

from pathlib import Path

from tests.bridge_env import running_bridge
from tests.conftest import sqlite_url
from tests.standins.hailuo import Fault, HailuoStandIn
from tests.standins.telegram import TelegramStandIn

GROUP = -1002200
ALICE, BORIS = 2201, 2202


def replies_to(telegram: TelegramStandIn, chat_id: int, message_id: int) -> list[str]:
    return [m.text for m in telegram.bot_messages(chat_id) if m.reply_to == message_id]


async def test_russian_and_english_speakers_in_one_group(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    telegram.add_user(ALICE, "Alice", language_code="en")
    telegram.add_user(BORIS, "Борис", language_code="ru")
    telegram.add_group(GROUP, "Team", admins={ALICE})
    hailuo.fail_next(Fault.SERVER_ERROR, Fault.SERVER_ERROR)
    async with running_bridge(tmp_path, telegram, hailuo):
        boris_help = await telegram.send_text(GROUP, BORIS, "/help")
        alice_help = await telegram.send_text(GROUP, ALICE, "/help")
        await telegram.wait_for(lambda: replies_to(telegram, GROUP, alice_help), what="help")
        await telegram.wait_for(lambda: replies_to(telegram, GROUP, boris_help), what="помощь")
        boris_ask = await telegram.send_text(GROUP, BORIS, "/ask Привет, как дела?")
        await telegram.wait_for(lambda: replies_to(telegram, GROUP, boris_ask), what="ошибка")
        alice_ask = await telegram.send_text(GROUP, ALICE, "/ask Hello?")
        await telegram.wait_for(lambda: replies_to(telegram, GROUP, alice_ask), what="error")
        await telegram.wait_for(
            lambda: "all_private_chats:ru" in telegram.commands, what="Russian command list"
        )

    assert replies_to(telegram, GROUP, boris_help)[0].startswith("Я приношу чат Hailuo в Telegram")
    assert replies_to(telegram, GROUP, alice_help)[0].startswith("I bring the Hailuo chat")
    assert "недоступен" in replies_to(telegram, GROUP, boris_ask)[0]
    assert "can't be reached" in replies_to(telegram, GROUP, alice_ask)[0]
    assert hailuo.requests[0].fields["msgContent"] == "Борис: Привет, как дела?"
    russian = {c["command"]: c["description"] for c in telegram.commands["all_private_chats:ru"]}
    english = {c["command"]: c["description"] for c in telegram.commands["all_private_chats"]}
    assert russian["new"] == "Начать новый разговор"
    assert english["new"] == "Start a fresh conversation"


async def test_lang_is_remembered_and_groups_can_pick_one(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    telegram.add_private_chat(ALICE, "Alice", language_code="en")
    telegram.add_user(BORIS, "Борис", language_code="ru")
    telegram.add_group(GROUP, "Team", admins={ALICE})
    url = sqlite_url(tmp_path)
    async with running_bridge(tmp_path, telegram, hailuo, database_url=url):
        await telegram.send_text(ALICE, ALICE, "/lang ru")
        await telegram.wait_for(lambda: telegram.bot_messages(ALICE), what="/lang reply")
        refused = await telegram.send_text(GROUP, BORIS, "/lang en")
        await telegram.wait_for(lambda: replies_to(telegram, GROUP, refused), what="refusal")
        chosen = await telegram.send_text(GROUP, ALICE, "/lang en")
        await telegram.wait_for(lambda: replies_to(telegram, GROUP, chosen), what="group lang")
    async with running_bridge(tmp_path, telegram, hailuo, database_url=url, login=False):
        private_help = await telegram.send_text(ALICE, ALICE, "/help")
        await telegram.wait_for(lambda: replies_to(telegram, ALICE, private_help), what="help")
        group_help = await telegram.send_text(GROUP, BORIS, "/help")
        await telegram.wait_for(lambda: replies_to(telegram, GROUP, group_help), what="help")

    assert telegram.bot_messages(ALICE)[0].text == "Готово: здесь я буду говорить по-русски."
    assert "только администраторы" in replies_to(telegram, GROUP, refused)[0]
    assert replies_to(telegram, ALICE, private_help)[0].startswith("Я приношу"), "remembered"
    assert replies_to(telegram, GROUP, group_help)[0].startswith("I bring"), "the group's choice"
