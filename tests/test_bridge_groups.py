"""Groups, supergroups and forum topics end to end."""

from __future__ import annotations

import itertools
from pathlib import Path

from tests.bridge_env import running_bridge
from tests.standins.hailuo import HailuoStandIn
from tests.standins.telegram import BOT_USERNAME, TelegramStandIn

GROUP = -1001500
ALICE, BOB = 601, 602


def setup_group(telegram: TelegramStandIn, *, forum: bool = False) -> None:
    telegram.add_user(ALICE, "Alice")
    telegram.add_user(BOB, "Bob")
    telegram.add_group(GROUP, "Team", forum=forum, admins={ALICE})


def answers(telegram: TelegramStandIn, thread_id: int | None = None) -> list[str]:
    return [m.text for m in telegram.bot_messages(GROUP, thread_id) if "You said" in m.text]


async def test_group_answers_ask_replies_and_mentions_only(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    setup_group(telegram)
    mention = f"@{BOT_USERNAME}"
    async with running_bridge(tmp_path, telegram, hailuo):
        await telegram.send_text(GROUP, BOB, "just chatting, not for the bot")
        asked = await telegram.send_text(GROUP, ALICE, "/ask what is 2+2?")
        await telegram.wait_for(lambda: len(answers(telegram)) == 1, what="answer to /ask")
        bot_message = telegram.bot_messages(GROUP)[0].message_id
        await telegram.send_text(GROUP, BOB, "and 3+3?", reply_to=bot_message)
        await telegram.wait_for(lambda: len(answers(telegram)) == 2, what="answer to reply")
        await telegram.send_text(
            GROUP,
            ALICE,
            f"hey {mention} what about 4+4",
            entities=[{"type": "mention", "offset": 4, "length": len(mention)}],
        )
        await telegram.wait_for(lambda: len(answers(telegram)) == 3, what="answer to mention")

    sent = [request.fields["msgContent"] for request in hailuo.requests]
    assert sent == ["Alice: what is 2+2?", "Bob: and 3+3?", "Alice: hey what about 4+4"]
    assert len({request.fields["chatID"] for request in hailuo.requests[1:]}) == 1, "shared"
    first = telegram.bot_messages(GROUP)[0]
    assert first.reply_to == asked
    assert first.reply_markup is None, "the Stop button is gone once the answer is complete"
    assert telegram.rate_limited == []
    assert not telegram.calls_of("sendMessageDraft"), "groups have no drafts"


async def test_group_answer_streams_by_editing_one_message(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    setup_group(telegram)
    hailuo.answer_next("streaming " * 150)
    hailuo.chunk_count, hailuo.chunk_delay = 40, 0.25  # ten seconds of answer
    async with running_bridge(tmp_path, telegram, hailuo):
        await telegram.send_text(GROUP, ALICE, "/ask stream please")
        await telegram.wait_for(
            lambda: any(
                m.text.rstrip().endswith("streaming") and len(m.text) > 1400
                for m in telegram.bot_messages(GROUP)
            ),
            what="the full answer",
        )
        final = telegram.bot_messages(GROUP)[0]
        await telegram.wait_for(lambda: final.reply_markup is None, what="Stop button removed")
    assert len(telegram.bot_messages(GROUP)) == 1
    assert final.edits >= 2, "the message grew by edits"
    assert telegram.rate_limited == []
    edits = [c.at for c in telegram.calls_of("editMessageText", GROUP) if c.status == 200]
    sends = [c.at for c in telegram.calls_of("sendMessage", GROUP) if c.status == 200]
    stamps = sorted(edits + sends)
    assert all(b - a >= 3.0 for a, b in itertools.pairwise(stamps)), stamps


async def test_stop_button_stops_the_answer(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    setup_group(telegram)
    hailuo.answer_next("long " * 2000)
    hailuo.chunk_count, hailuo.chunk_delay = 400, 0.05
    async with running_bridge(tmp_path, telegram, hailuo):
        await telegram.send_text(GROUP, ALICE, "/ask a long one")
        message = (await telegram.wait_for(lambda: telegram.bot_messages(GROUP), what="first"))[0]
        assert message.reply_markup is not None
        data = message.reply_markup["inline_keyboard"][0][0]["callback_data"]
        await telegram.press_button(GROUP, message.message_id, BOB, data)
        await telegram.wait_for(lambda: telegram.callback_answers, what="Bob's refusal")
        assert telegram.callback_answers[-1].get("show_alert") in ("true", True)
        await telegram.press_button(GROUP, message.message_id, ALICE, data)
        await telegram.wait_for(
            lambda: message.text.endswith("⏹ Stopped."), what="the stopped answer"
        )
        assert await hailuo.wait_outcome(0) == "disconnected"
    assert message.reply_markup is None


async def test_forum_topics_have_separate_conversations(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    setup_group(telegram, forum=True)
    async with running_bridge(tmp_path, telegram, hailuo):
        await telegram.send_text(GROUP, ALICE, "/ask in topic ten", thread_id=10)
        await telegram.wait_for(lambda: answers(telegram, 10), what="topic 10")
        await telegram.send_text(GROUP, ALICE, "/ask in topic twenty", thread_id=20)
        await telegram.wait_for(lambda: answers(telegram, 20), what="topic 20")
        await telegram.send_text(GROUP, BOB, "/ask again in ten", thread_id=10)
        await telegram.wait_for(lambda: len(answers(telegram, 10)) == 2, what="topic 10 again")

    ten_first, twenty, ten_again = hailuo.requests
    assert ten_first.fields["chatID"] == "0"
    assert twenty.fields["chatID"] == "0", "a new topic starts its own conversation"
    assert ten_again.fields["chatID"] not in ("0", twenty.fields["chatID"])
    assert answers(telegram, 10)[1].endswith("(message 2 in this conversation)")
    assert answers(telegram, 20) == [
        "You said: Alice: in topic twenty (message 1 in this conversation)"
    ]


async def test_personal_context_gives_each_member_a_conversation(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    setup_group(telegram)
    async with running_bridge(tmp_path, telegram, hailuo):
        await telegram.send_text(GROUP, BOB, "/context personal")
        await telegram.wait_for(lambda: telegram.bot_messages(GROUP), what="refusal for Bob")
        await telegram.send_text(GROUP, ALICE, "/context personal")
        await telegram.wait_for(lambda: len(telegram.bot_messages(GROUP)) == 2, what="switch")
        await telegram.send_text(GROUP, ALICE, "/ask alice here")
        await telegram.wait_for(lambda: len(answers(telegram)) == 1, what="Alice")
        await telegram.send_text(GROUP, BOB, "/ask bob here")
        await telegram.wait_for(lambda: len(answers(telegram)) == 2, what="Bob")

    notices = [m.text for m in telegram.bot_messages(GROUP)][:2]
    assert "Only group admins" in notices[0]
    assert "personal" in notices[1]
    alice, bob = hailuo.requests
    assert alice.fields["msgContent"] == "alice here", "no name prefix in a personal chat"
    assert bob.fields["chatID"] == "0", "Bob does not continue Alice's conversation"


async def test_group_migrated_to_supergroup_keeps_its_conversation(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    old, new = -4100, -1004100
    telegram.add_user(ALICE, "Alice")
    telegram.add_group(old, "Old")
    async with running_bridge(tmp_path, telegram, hailuo) as env:
        await telegram.send_text(old, ALICE, "/ask before")
        await telegram.wait_for(
            lambda: [m for m in telegram.bot_messages(old) if m.reply_markup is None],
            what="the first answer, complete",
        )
        await telegram.wait_for(lambda: not env.app.bridge.service.running, what="answer saved")
        await telegram.migrate(old, new, ALICE)
        await telegram.send_text(new, ALICE, "/ask after")
        await telegram.wait_for(lambda: telegram.bot_messages(new), what="answer after migration")
    _, after = hailuo.requests
    assert after.fields["chatID"] != "0", "the supergroup continues the group's conversation"
    assert "(message 2 in this conversation)" in telegram.bot_messages(new)[0].text
