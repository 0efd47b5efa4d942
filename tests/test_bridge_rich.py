"""Answers as rich messages, end to end against the Bot API stand-in (which enforces the rich
limits and can refuse rich content or lack the methods, like an older server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.bridge_env import ApiBridgeEnv, running_api_bridge
from tests.standins.openai_compat import OpenAICompatStandIn
from tests.standins.telegram import StoredMessage, TelegramStandIn
from tests.test_rich import ANSWER

ALICE = 1901
FORUM, TOPIC = -1001902, 7


@pytest.fixture
async def api() -> AsyncIterator[OpenAICompatStandIn]:
    async with OpenAICompatStandIn() as standin:
        standin.default_reasoning = lambda _: ""
        standin.chunk_count = 12
        standin.chunk_delay = 0.15
        yield standin


def setup(telegram: TelegramStandIn) -> None:
    telegram.add_private_chat(ALICE, "Alice")
    telegram.add_group(FORUM, "Forum", forum=True, admins={ALICE})


async def answered(env: ApiBridgeEnv, chat_id: int, words: str) -> list[StoredMessage]:
    await env.telegram.wait_for(
        lambda: any(words in m.text for m in env.telegram.bot_messages(chat_id)), what=words
    )
    await env.telegram.wait_for(lambda: not env.app.bridge.service.running, what="saved")
    return env.telegram.bot_messages(chat_id)


async def test_a_structured_answer_is_one_rich_message_streamed_by_drafts(
    tmp_path: Path, telegram: TelegramStandIn, api: OpenAICompatStandIn
) -> None:
    setup(telegram)
    api.reply_next(ANSWER)
    async with running_api_bridge(tmp_path, telegram, api) as env:
        await telegram.send_text(ALICE, ALICE, "compare them")
        [final] = await answered(env, ALICE, "Done.")
    assert final.rich == "markdown"
    assert final.text == ANSWER.strip("\n") or final.text == ANSWER
    drafts = telegram.calls_of("sendRichMessageDraft", ALICE)
    assert drafts, "the answer streamed as rich drafts first"
    assert all(call.status == 200 for call in telegram.calls_of("sendRichMessage"))
    assert telegram.rate_limited == []


async def test_a_forum_topic_gets_a_rich_message_grown_by_edits(
    tmp_path: Path, telegram: TelegramStandIn, api: OpenAICompatStandIn
) -> None:
    setup(telegram)
    api.chunk_delay = 0.6  # a group edits at most every few seconds: let it grow in frames
    api.reply_next(ANSWER)
    async with running_api_bridge(tmp_path, telegram, api) as env:
        await telegram.send_text(FORUM, ALICE, "/ask compare them", thread_id=TOPIC)
        [final] = await answered(env, FORUM, "Done.")
    assert final.rich == "markdown"
    assert final.thread_id == TOPIC
    assert "| 20 kB | 5 msgs | 1 msg |" in final.text
    assert telegram.calls_of("sendRichMessage", FORUM)
    edits = [c for c in telegram.calls_of("editMessageText", FORUM) if "rich_message" in c.params]
    assert edits, "later frames edit the rich message"
    assert final.reply_markup is None, "the Stop button is gone from the final message"
    assert telegram.rate_limited == []


async def test_a_20000_character_answer_is_one_message_not_five(
    tmp_path: Path, telegram: TelegramStandIn, api: OpenAICompatStandIn
) -> None:
    setup(telegram)
    paragraphs = [f"Paragraph {n}: " + "lorem ipsum dolor sit amet " * 14 for n in range(50)]
    long_answer = "\n\n".join(paragraphs)
    assert 19_000 < len(long_answer) < 21_000
    api.reply_next(long_answer)
    async with running_api_bridge(tmp_path, telegram, api) as env:
        await telegram.send_text(ALICE, ALICE, "tell me everything")
        messages = await answered(env, ALICE, "Paragraph 49")
    [final] = messages
    assert final.rich == "markdown"
    assert final.text == long_answer


async def test_a_refused_rich_answer_falls_back_to_entities_with_nothing_lost(
    tmp_path: Path, telegram: TelegramStandIn, api: OpenAICompatStandIn
) -> None:
    setup(telegram)
    telegram.refuse_rich = True
    api.reply_next(ANSWER)
    async with running_api_bridge(tmp_path, telegram, api) as env:
        await telegram.send_text(ALICE, ALICE, "compare them")
        messages = await answered(env, ALICE, "Done.")
        metrics = env.app.metrics.render().decode()
    assert all(message.rich == "" for message in messages)
    shown = "\n".join(message.text for message in messages)
    for words in ("fast path", "20 kB", "def total", "Done."):
        assert words in shown
    assert "hailuo_bridge_rich_fallbacks_total 1.0" in metrics


async def test_a_server_without_rich_messages_keeps_working(
    tmp_path: Path, telegram: TelegramStandIn, api: OpenAICompatStandIn
) -> None:
    setup(telegram)
    telegram.rich_supported = False
    api.reply_next(ANSWER)
    async with running_api_bridge(tmp_path, telegram, api) as env:
        await telegram.send_text(FORUM, ALICE, "/ask compare them", thread_id=TOPIC)
        messages = await answered(env, FORUM, "Done.")
    assert all(message.rich == "" for message in messages)
    assert "fast path" in messages[0].text


async def test_thinking_shows_as_a_thinking_block_and_reasoning_as_a_quote(
    tmp_path: Path, telegram: TelegramStandIn, api: OpenAICompatStandIn
) -> None:
    setup(telegram)
    api.reasoning_chunk_count = 4
    api.first_chunk_delay = 0.2
    api.reply_next(ANSWER, reasoning="Check the sizes.\nThen pick the table layout.")
    async with running_api_bridge(tmp_path, telegram, api, show_reasoning=True) as env:
        await telegram.send_text(ALICE, ALICE, "compare them")
        [final] = await answered(env, ALICE, "Done.")
    first_draft = telegram.calls_of("sendRichMessageDraft", ALICE)[0]
    assert "<tg-thinking>" in first_draft.params["rich_message"]
    thinking = str(first_draft.params["rich_message"])
    assert "<tg-thinking>Check" in thinking, "with SHOW_REASONING: the latest reasoning line"
    assert final.text.startswith("> 💭 Check the sizes.")
    assert "Then pick the table layout" in final.text
    assert "<tg-thinking>" not in final.text


async def test_off_keeps_the_plain_path(
    tmp_path: Path, telegram: TelegramStandIn, api: OpenAICompatStandIn
) -> None:
    setup(telegram)
    api.reply_next(ANSWER)
    async with running_api_bridge(tmp_path, telegram, api, rich_messages="off") as env:
        await telegram.send_text(ALICE, ALICE, "compare them")
        messages = await answered(env, ALICE, "Done.")
    assert [message.rich for message in messages] == [""]
    assert telegram.calls_of("sendRichMessage") == []
    assert telegram.calls_of("sendRichMessageDraft") == []


async def test_an_answer_past_one_rich_message_continues_in_a_second(
    tmp_path: Path, telegram: TelegramStandIn, api: OpenAICompatStandIn
) -> None:
    setup(telegram)
    paragraphs = [f"Section {n}: " + "alpha beta gamma delta " * 30 for n in range(80)]
    api.reply_next("\n\n".join(paragraphs))
    api.chunk_count = 20
    async with running_api_bridge(tmp_path, telegram, api, max_answer_chars=60_000) as env:
        await telegram.send_text(FORUM, ALICE, "/ask everything", thread_id=TOPIC)
        messages = await answered(env, FORUM, "Section 79")
    assert len(messages) == 2
    assert all(m.rich == "markdown" and len(m.text) <= 32_768 for m in messages)
    joined = "\n\n".join(m.text for m in messages)
    assert all(f"Section {n}:" in joined for n in range(80))
    assert messages[1].text.startswith("Section "), "cut at a paragraph boundary"


async def test_an_answer_that_turns_rich_only_at_the_end_is_not_lost_when_refused(
    tmp_path: Path, telegram: TelegramStandIn, api: OpenAICompatStandIn
) -> None:
    """The table arrives in the last chunk, so the final is the first rich send; refused, the
    answer is delivered plain."""
    setup(telegram)
    telegram.refuse_rich = True
    api.chunk_count = 2
    api.chunk_delay = 1.5  # the plain start is shown before the table arrives
    api.reply_next("A short intro line before the table\n\n| a | b |\n| --- | --- |\n| 1 | 2 |")
    async with running_api_bridge(tmp_path, telegram, api) as env:
        await telegram.send_text(FORUM, ALICE, "/ask table please", thread_id=TOPIC)
        messages = await answered(env, FORUM, "intro line")
        await telegram.wait_for(
            lambda: all(m.reply_markup is None for m in telegram.bot_messages(FORUM)),
            what="the final",
        )
        messages = telegram.bot_messages(FORUM)
    [final] = messages
    assert final.rich == ""
    assert "intro line" in final.text and "1" in final.text and "b" in final.text
    assert telegram.calls_of("sendRichMessage") or [
        c for c in telegram.calls_of("editMessageText") if "rich_message" in c.params
    ], "the rich final was tried"


async def test_a_refusal_after_a_rich_part_keeps_that_part_and_goes_on_plain(
    tmp_path: Path, telegram: TelegramStandIn, api: OpenAICompatStandIn
) -> None:
    setup(telegram)
    paragraphs = [f"Section {n}: " + "alpha beta gamma delta " * 30 for n in range(60)]
    paragraphs.insert(52, "POISON paragraph that Telegram refuses as rich.")
    api.reply_next("\n\n".join(paragraphs))
    api.chunk_count = 20
    telegram.refuse_rich_containing = "POISON"
    async with running_api_bridge(tmp_path, telegram, api, max_answer_chars=60_000) as env:
        await telegram.send_text(FORUM, ALICE, "/ask everything", thread_id=TOPIC)
        messages = await answered(env, FORUM, "Section 59")
        metrics = env.app.metrics.render().decode()
    first, *rest = messages
    assert first.rich == "markdown", "the sealed rich part stays as it was sent"
    assert first.text.startswith("Section 0:")
    assert rest and all(m.rich == "" for m in rest)
    shown = "\n".join(m.text for m in messages)
    assert all(f"Section {n}:" in shown for n in range(60))
    assert "POISON paragraph" in shown
    assert shown.count("Section 3:") == 1, "nothing sent twice"
    assert "hailuo_bridge_rich_fallbacks_total 1.0" in metrics
