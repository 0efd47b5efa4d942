"""Answers a misbehaving upstream could send: huge, nested, full of bad links, with long errors.

Each is delivered — cut, flattened or less formatted if need be — and never lost, and the bot
keeps answering other chats meanwhile.
"""

from __future__ import annotations

from pathlib import Path

from bot.storage.answers import AnswerRecord, AnswerStore
from bot.storage.models import AnswerStatus
from tests.bridge_env import ADMIN, BridgeEnv, running_bridge
from tests.standins.hailuo import Fault, HailuoStandIn
from tests.standins.telegram import MESSAGE_LIMIT, TelegramStandIn, utf16_len

ALICE, BOB = 801, 802
GROUP = -1001800

LINKS = (
    "Read [the intro](#intro), [the docs](/docs/start), [this](javascript:alert(1)), "
    "[a relative one](../up) and [the site](https://example.org/guide)."
)


def setup(telegram: TelegramStandIn) -> None:
    telegram.add_private_chat(ALICE, "Alice")
    telegram.add_private_chat(BOB, "Bob")
    telegram.add_private_chat(ADMIN, "Admin")
    telegram.add_group(GROUP, "Team", admins={ALICE})
    telegram.users.setdefault(BOB, telegram.users[BOB])


def texts(telegram: TelegramStandIn, chat_id: int) -> list[str]:
    return [message.text for message in telegram.bot_messages(chat_id)]


async def answers_of(env: BridgeEnv) -> list[AnswerRecord]:
    store = AnswerStore(env.app.database)
    found = []
    for answer_id in range(1, 20):
        record = await store.get(answer_id)
        if record is not None:
            found.append(record)
    return found


async def test_links_telegram_would_refuse_keep_their_words(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    """Anchors, relative paths and javascript: links become plain words; the good link stays,
    and the answer arrives (Telegram's stand-in refuses such URLs as Telegram does)."""
    setup(telegram)
    hailuo.answer_next(LINKS)
    async with running_bridge(tmp_path, telegram, hailuo) as env:
        await telegram.send_text(GROUP, ALICE, "/ask links please")
        await telegram.wait_for(lambda: "the site" in "".join(texts(telegram, GROUP)), what="links")
        await env.stop()
        records = await answers_of(env)
    [message] = telegram.bot_messages(GROUP)
    assert message.text.startswith("Read the intro, the docs, this, a relative one and the site")
    links = [entity["url"] for entity in message.entities if entity["type"] == "text_link"]
    assert links == ["https://example.org/guide"]
    assert [record.status for record in records] == [AnswerStatus.DONE]


async def test_formatting_telegram_refuses_is_dropped_not_the_answer(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    """Telegram refuses a link that looks valid (a blocked domain): the answer is sent again
    without links, in private chats (drafts) and groups (edits) alike."""
    setup(telegram)
    telegram.refused_link_hosts.add("blocked.example")
    answer = "**Bold** and [a blocked link](https://blocked.example/x) and `code`, " * 20
    hailuo.answer_next(answer, answer)
    async with running_bridge(tmp_path, telegram, hailuo) as env:
        await telegram.send_text(ALICE, ALICE, "first")
        await telegram.send_text(GROUP, BOB, "/ask second")
        await telegram.wait_for(
            lambda: texts(telegram, ALICE) and texts(telegram, GROUP), what="both answers"
        )
        await env.stop()
        records = await answers_of(env)
    for chat_id in (ALICE, GROUP):
        [message] = telegram.bot_messages(chat_id)
        assert message.text.startswith("Bold and a blocked link and code")
        kinds = {entity["type"] for entity in message.entities}
        assert "text_link" not in kinds
        assert {"bold", "code"} <= kinds, "only the links were given up"
    assert sorted(record.status for record in records) == [AnswerStatus.DONE] * 2


async def test_a_huge_answer_is_cut_and_other_chats_are_served(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    """A 1 MB answer in four events: the user gets the first MAX_ANSWER_CHARS in parts that
    each fit, and a note that it was cut; upstream is stopped; Bob is answered meanwhile."""
    setup(telegram)
    paragraph = "A paragraph with **bold**, `code` and a [link](https://example.org). " * 5
    huge = (paragraph + "\n\n") * (1_000_000 // (len(paragraph) + 2))
    hailuo.answer_next(huge)
    hailuo.chunk_count = 4
    async with running_bridge(
        tmp_path, telegram, hailuo, max_answer_chars=20_000, rich_messages="off"
    ) as env:  # the entity path's parts (rich ones: tests/test_bridge_rich.py)
        await telegram.send_text(ALICE, ALICE, "tell me everything")
        await telegram.send_text(BOB, BOB, "short one")
        await telegram.wait_for(
            lambda: any("cut" in text for text in texts(telegram, ALICE)),
            what="the cut answer",
        )
        await telegram.wait_for(lambda: texts(telegram, BOB), what="Bob's answer")
        await env.stop()
        records = await answers_of(env)
    parts = telegram.bot_messages(ALICE)
    assert all(utf16_len(part.text) <= MESSAGE_LIMIT for part in parts)
    assert "too long and was cut" in parts[-1].text
    shown = sum(len(part.text) for part in parts)
    assert 10_000 < shown < 20_000  # Markdown renders shorter (link URLs go into entities)
    assert len(parts) >= 3
    assert "You said: short one" in texts(telegram, BOB)[0]
    by_chat = {record.chat_id: record for record in records}
    assert by_chat[ALICE].status is AnswerStatus.DONE
    assert by_chat[ALICE].chars <= 20_000
    assert by_chat[ALICE].error_kind == "truncated"


async def test_a_nested_list_bomb_arrives_flattened(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    """20 kB of `- - - …` would render to 100 M characters; it arrives as a small, valid
    message with its words."""
    setup(telegram)
    hailuo.answer_next("Start\n\n" + "- " * 10_000 + "deep words\n\nEnd of answer.")
    async with running_bridge(tmp_path, telegram, hailuo) as env:
        await telegram.send_text(ALICE, ALICE, "bomb")
        await telegram.wait_for(
            lambda: "End of answer." in "".join(texts(telegram, ALICE)), what="the answer"
        )
        await env.stop()
    everything = "".join(texts(telegram, ALICE))
    assert "deep words" in everything
    assert len(everything) < 1_000


async def test_a_long_upstream_error_fits_its_note_and_keeps_the_partial_answer(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    """5 000 characters of upstream error: the partial answer and a shortened note arrive, and
    the admin's /status still works."""
    setup(telegram)
    hailuo.error_message = "moderation says: " + "blah " * 1000
    hailuo.answer_next("Here is the beginning of a fine answer " * 100)
    hailuo.fail_next(Fault.STREAM_STATUS_ERROR)
    hailuo.chunk_count = 3
    async with running_bridge(tmp_path, telegram, hailuo) as env:
        await telegram.send_text(ALICE, ALICE, "go")
        await telegram.wait_for(
            lambda: any("moderation says" in text for text in texts(telegram, ALICE)),
            what="the note",
        )
        await telegram.send_text(ADMIN, ADMIN, "/status")
        await telegram.wait_for(lambda: texts(telegram, ADMIN), what="/status")
        await env.stop()
    messages = texts(telegram, ALICE)
    assert "Here is the beginning of a fine answer" in messages[0]
    assert all(utf16_len(text) <= MESSAGE_LIMIT for text in messages)
    note = next(text for text in messages if "moderation says" in text)
    assert note.count("blah") < 100
    assert "moderation says" in texts(telegram, ADMIN)[-1]
