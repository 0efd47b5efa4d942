"""Private chats end to end: the real Dispatcher against the Telegram and Hailuo stand-ins."""

from __future__ import annotations

from pathlib import Path

from tests.bridge_env import running_bridge
from tests.standins.hailuo import HailuoStandIn
from tests.standins.telegram import TelegramStandIn

USER = 501


async def test_private_question_streams_drafts_then_one_final_message(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    telegram.add_private_chat(USER, "Alice")
    answer = "**Hello** Alice, here is `code` and a [link](https://example.com). " + "More. " * 60
    hailuo.answer_next(answer)
    hailuo.chunk_count, hailuo.chunk_delay = 12, 0.25
    async with running_bridge(tmp_path, telegram, hailuo):
        await telegram.send_text(USER, USER, "Hi there")
        messages = await telegram.wait_for(lambda: telegram.bot_messages(USER), what="the answer")

    assert len(messages) == 1
    final = messages[0]
    assert final.text.startswith("Hello Alice, here is code and a link.")
    kinds = {entity["type"] for entity in final.entities}
    assert {"bold", "code", "text_link"} <= kinds
    frames = telegram.draft_frames(USER)
    assert len(frames) >= 2, "the answer should have streamed as drafts"
    assert all(final.text.startswith(frame) or len(frame) < len(final.text) for frame in frames)
    assert hailuo.requests[0].fields["msgContent"] == "Hi there"
    assert telegram.rate_limited == []


async def test_conversation_continues_and_new_starts_fresh(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    telegram.add_private_chat(USER, "Alice")
    async with running_bridge(tmp_path, telegram, hailuo):
        # Sent in quick succession: /new must still apply between "second" and "third".
        for text in ("first", "second", "/new", "third"):
            await telegram.send_text(USER, USER, text)
        await telegram.wait_for(
            lambda: any("third" in m.text for m in telegram.bot_messages(USER)), what="answer 3"
        )
        await telegram.send_text(USER, USER, "/title")
        await telegram.wait_for(
            lambda: any(m.text.startswith("📝") for m in telegram.bot_messages(USER)), what="title"
        )

    texts = [m.text for m in telegram.bot_messages(USER) if not m.text.startswith("⏳")]
    chat_ids = [request.fields["chatID"] for request in hailuo.requests]
    assert chat_ids[0] == "0"
    assert chat_ids[1] != "0", "the second question continues the conversation"
    assert chat_ids[2] == "0", "/new starts a fresh conversation"
    assert texts[1] == "You said: second (message 2 in this conversation)"
    assert "fresh conversation" in texts[2]
    assert texts[3] == "You said: third (message 1 in this conversation)"
    assert texts[4] == "📝 Chat about third"


async def test_messages_sent_together_are_queued_and_answered_in_order(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    telegram.add_private_chat(USER, "Alice")
    hailuo.chunk_count, hailuo.chunk_delay = 6, 0.2
    async with running_bridge(tmp_path, telegram, hailuo):
        for text in ("one", "two", "three"):
            await telegram.send_text(USER, USER, text)
        await telegram.wait_for(
            lambda: sum("You said" in m.text for m in telegram.bot_messages(USER)) == 3,
            what="three answers",
        )
    texts = [m.text for m in telegram.bot_messages(USER)]
    answers = [t for t in texts if t.startswith("You said")]
    assert answers == [
        "You said: one (message 1 in this conversation)",
        "You said: two (message 2 in this conversation)",
        "You said: three (message 3 in this conversation)",
    ]
    assert sum(t.startswith("⏳ Queued") for t in texts) == 2
    assert len({r.fields["chatID"] for r in hailuo.requests[1:]}) == 1, "one conversation"


async def test_stopping_the_draft_keeps_the_partial_answer(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    telegram.add_private_chat(USER, "Alice")
    hailuo.answer_next("word " * 400)
    hailuo.chunk_count, hailuo.chunk_delay = 200, 0.05
    async with running_bridge(tmp_path, telegram, hailuo):
        await telegram.send_text(USER, USER, "tell me a long story")
        await telegram.wait_for(lambda: telegram.draft_frames(USER), what="a draft")
        await telegram.stop_draft(USER, draft_id=telegram.draft_log[0][2])
        message = await telegram.wait_for(lambda: telegram.bot_messages(USER), what="final")
        assert await hailuo.wait_outcome(0) == "disconnected"
    final = message[0].text
    assert final.startswith("word word")
    assert final.endswith("⏹ Stopped.")
    assert len(final) < len("word " * 400)


async def test_long_answer_is_split_without_losing_anything(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    telegram.add_private_chat(USER, "Alice")
    code = "```python\n" + "".join(f"value_{n} = {n}  # строка 🙂\n" for n in range(450)) + "```"
    answer = "Intro paragraph.\n\n" + code + "\n\nThe end."
    hailuo.answer_next(answer)
    hailuo.chunk_count, hailuo.chunk_delay = 30, 0.05
    # The entity path (RICH_MESSAGES=off); a long rich answer: tests/test_bridge_rich.py.
    async with running_bridge(tmp_path, telegram, hailuo, rich_messages="off"):
        await telegram.send_text(USER, USER, "long please")
        await telegram.wait_for(
            lambda: any("The end." in m.text for m in telegram.bot_messages(USER)),
            what="the last part",
        )
    parts = telegram.bot_messages(USER)
    assert len(parts) >= 3
    for part in parts:
        assert len(part.text.encode("utf-16-le")) // 2 <= 4096
        pre = [e for e in part.entities if e["type"] == "pre"]
        assert pre, "every part holding code shows it as a code block"
        assert pre[0].get("language") == "python"
    everything = "\n".join(part.text for part in parts)
    for n in range(450):
        assert everything.count(f"value_{n} = {n}  #") == 1
    assert everything.startswith("Intro paragraph.")
    assert telegram.rate_limited == []


async def test_non_text_and_too_long_messages_are_refused_politely(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    telegram.add_private_chat(USER, "Alice")
    async with running_bridge(tmp_path, telegram, hailuo, max_input_chars=50):
        await telegram.send_photo(USER, USER)
        await telegram.wait_for(lambda: telegram.bot_messages(USER), what="text-only notice")
        await telegram.send_text(USER, USER, "x" * 51)
        await telegram.wait_for(lambda: len(telegram.bot_messages(USER)) == 2, what="too long")
        await telegram.send_photo(USER, USER, caption="what is this caption")
        await telegram.wait_for(lambda: len(telegram.bot_messages(USER)) == 3, what="caption")
    texts = [m.text for m in telegram.bot_messages(USER)]
    assert "only read text" in texts[0]
    assert "too long" in texts[1]
    assert "51" in texts[1]
    assert texts[2].startswith("You said: what is this caption")
    assert [r.fields["msgContent"] for r in hailuo.requests] == ["what is this caption"]


async def test_per_user_question_limit(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    telegram.add_private_chat(USER, "Alice")
    async with running_bridge(tmp_path, telegram, hailuo, questions_per_minute=2):
        for text in ("a", "b", "c"):
            await telegram.send_text(USER, USER, text)

        def replied() -> bool:
            texts = [m.text for m in telegram.bot_messages(USER)]
            answers = sum(t.startswith("You said") for t in texts)
            return answers == 2 and any("faster than I can keep up" in t for t in texts)

        await telegram.wait_for(replied, what="two answers and the refusal")
    texts = [m.text for m in telegram.bot_messages(USER)]
    assert sum("faster than I can keep up" in t for t in texts) == 1
    assert len(hailuo.requests) == 2


async def test_access_list_turns_strangers_away(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    telegram.add_private_chat(USER, "Alice")
    telegram.add_private_chat(777, "Mallory")
    async with running_bridge(tmp_path, telegram, hailuo, allowed_user_ids=frozenset({USER})):
        await telegram.send_text(777, 777, "let me in")
        await telegram.send_text(USER, USER, "hello")
        await telegram.wait_for(lambda: telegram.bot_messages(USER), what="Alice's answer")
        await telegram.wait_for(lambda: telegram.bot_messages(777), what="Mallory's refusal")
    assert telegram.bot_messages(777)[0].text == "Sorry, this bot is private."
    assert [r.fields["msgContent"] for r in hailuo.requests] == ["hello"]


async def test_commands_are_registered_for_private_chats_and_groups(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    async with running_bridge(tmp_path, telegram, hailuo):
        await telegram.wait_for(
            lambda: {"all_private_chats", "all_group_chats"} <= telegram.commands.keys(),
            what="setMyCommands",
        )
    private = {c["command"] for c in telegram.commands["all_private_chats"]}
    groups = {c["command"] for c in telegram.commands["all_group_chats"]}
    assert {"start", "help", "new", "stop", "title"} <= private
    assert {"ask", "new", "stop", "title", "context", "help"} <= groups
