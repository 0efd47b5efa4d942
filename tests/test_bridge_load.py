"""Many chats at once: everyone answered, in full, and Telegram never says 429."""

from __future__ import annotations

from pathlib import Path

from tests.bridge_env import running_bridge
from tests.standins.hailuo import HailuoStandIn
from tests.standins.telegram import TelegramStandIn

CHATS = 50


async def test_a_burst_of_fifty_chats_is_answered_without_a_single_429(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    users = [8000 + n for n in range(CHATS)]
    groups = [-1008000 - n for n in range(10)]
    for user in users:
        telegram.add_private_chat(user, f"User {user}")
    for group in groups:
        telegram.add_group(group, f"Group {group}")
    hailuo.chunk_count, hailuo.chunk_delay = 10, 0.2
    async with running_bridge(tmp_path, telegram, hailuo) as env:
        for user in users:
            await telegram.send_text(user, user, f"question from {user}")
        for index, group in enumerate(groups):
            await telegram.send_text(group, users[index], f"/ask group question {group}")

        def finished() -> bool:
            private = all(
                any(
                    m.text.startswith(f"You said: question from {u}")
                    for m in telegram.bot_messages(u)
                )
                for u in users
            )
            public = all(
                any(
                    m.reply_markup is None and "You said" in m.text
                    for m in telegram.bot_messages(g)
                )
                for g in groups
            )
            return private and public

        await telegram.wait_for(finished, timeout=180, what="all sixty answers")
        await telegram.wait_for(lambda: not env.app.bridge.service.running, what="all saved")

    assert telegram.rate_limited == []
    for user in users:
        assert [m.text for m in telegram.bot_messages(user)] == [
            f"You said: question from {user} (message 1 in this conversation)"
        ]
    assert len(hailuo.requests) == CHATS + len(groups)
