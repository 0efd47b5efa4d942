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
