"""The whole bot with UPSTREAM=minimax-agent: private chats, groups, topics, stops and faults,
against the Telegram and MiniMax Agent stand-ins (API and stream hosts on different ports)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bot.minimax_agent.credentials import AgentAuth
from bot.storage.answers import AnswerStore
from bot.storage.conversations import ConversationKey, ConversationStore
from bot.storage.database import Database
from bot.storage.migrations import ensure_schema
from bot.storage.models import AnswerStatus
from tests.bridge_env import ADMIN, AGENT_USER, agent_auth, running_agent_bridge, running_bridge
from tests.conftest import sqlite_url
from tests.standins.hailuo import HailuoStandIn
from tests.standins.minimax_agent import AgentFault, MiniMaxAgentStandIn
from tests.standins.telegram import TelegramStandIn

ALICE, BOB = 1701, 1702
GROUP = -1001900
FORUM = -1001901


def setup(telegram: TelegramStandIn) -> None:
    telegram.add_private_chat(ALICE, "Alice")
    telegram.add_private_chat(BOB, "Bob")
    telegram.add_private_chat(ADMIN, "Admin")
    telegram.add_group(GROUP, "Team", admins={ALICE})
    telegram.add_group(FORUM, "Forum", forum=True, admins={ALICE})


def texts(telegram: TelegramStandIn, chat_id: int, thread_id: int | None = None) -> list[str]:
    return [message.text for message in telegram.bot_messages(chat_id, thread_id)]


def said(telegram: TelegramStandIn, chat_id: int, words: str) -> bool:
    return any(words in text for text in texts(telegram, chat_id))


async def test_private_answer_thinks_first_and_never_shows_the_reasoning(
    tmp_path: Path, telegram: TelegramStandIn, agent: MiniMaxAgentStandIn
) -> None:
    setup(telegram)
    agent.reasoning = "SECRET-REASONING: the user wants a greeting."
    agent.first_chunk_delay = 1.5
    agent.answer_next("**Hello** Alice, nice to meet you.")
    async with running_agent_bridge(tmp_path, telegram, agent):
        await telegram.send_text(ALICE, ALICE, "Hi!")
        await telegram.wait_for(lambda: said(telegram, ALICE, "nice to meet you"), what="answer")
    [final] = telegram.bot_messages(ALICE)
    assert final.text == "Hello Alice, nice to meet you."
    frames = telegram.draft_frames(ALICE)
    # A rich draft's thinking block, with the latest reasoning line (RICH_MESSAGES=auto).
    assert frames[0].startswith("<tg-thinking>"), "the draft shows the model thinking first"
    assert not any("SECRET-REASONING" in frame for frame in frames)
    [post] = agent.message_posts
    assert post.json()["content"] == "Hi!"
    assert telegram.rate_limited == []


async def test_continuity_new_title_groups_and_topics(
    tmp_path: Path, telegram: TelegramStandIn, agent: MiniMaxAgentStandIn
) -> None:
    setup(telegram)
    async with running_agent_bridge(tmp_path, telegram, agent):
        for text in ("first", "second", "/new", "third"):
            await telegram.send_text(ALICE, ALICE, text)
        await telegram.wait_for(lambda: said(telegram, ALICE, "You said: third"), what="third")
        await telegram.send_text(ALICE, ALICE, "/title")
        await telegram.wait_for(lambda: said(telegram, ALICE, "📝"), what="the title")
        await telegram.send_text(GROUP, BOB, "/ask in the group")
        await telegram.send_text(FORUM, BOB, "/ask in topic 7", thread_id=7)
        await telegram.send_text(FORUM, BOB, "/ask in topic 9", thread_id=9)
        await telegram.wait_for(lambda: said(telegram, GROUP, "You said"), what="group")
        await telegram.wait_for(
            lambda: texts(telegram, FORUM, 7) and texts(telegram, FORUM, 9), what="both topics"
        )
    answers = [t for t in texts(telegram, ALICE) if t.startswith("You said")]
    assert answers == [
        "You said: first (message 1 in this session)",
        "You said: second (message 2 in this session)",
        "You said: third (message 1 in this session)",
    ]
    assert "📝 Chat about third" in texts(telegram, ALICE)
    turns = sorted(session.turns for session in agent.sessions.values())
    assert turns == [
        ["Bob: in the group"],
        ["Bob: in topic 7"],
        ["Bob: in topic 9"],
        ["first", "second"],
        ["third"],
    ]
    assert "You said: Bob: in topic 7" in texts(telegram, FORUM, 7)[0]


async def test_stop_closes_the_stream_and_keeps_the_partial_answer(
    tmp_path: Path, telegram: TelegramStandIn, agent: MiniMaxAgentStandIn
) -> None:
    setup(telegram)
    agent.answer_next("word " * 400)
    agent.chunk_count, agent.chunk_delay = 200, 0.05
    async with running_agent_bridge(tmp_path, telegram, agent):
        await telegram.send_text(GROUP, BOB, "/ask a long story")
        await telegram.wait_for(lambda: said(telegram, GROUP, "word word"), what="a frame")
        await telegram.send_text(GROUP, BOB, "/stop")
        await telegram.wait_for(lambda: said(telegram, GROUP, "Stopped"), what="stopped")
        assert await agent.wait_message_outcome(0) == "disconnected"
    final = next(text for text in texts(telegram, GROUP) if "Stopped" in text)
    assert final.startswith("word word")


async def test_a_refusal_that_the_probe_contradicts_keeps_the_login(
    tmp_path: Path, telegram: TelegramStandIn, agent: MiniMaxAgentStandIn
) -> None:
    """One 401 during an upstream blip: the login still works when probed, so it is kept and
    the next question is answered; no admin is bothered."""
    setup(telegram)
    agent.fail_next(AgentFault.UNAUTHORIZED)
    async with running_agent_bridge(tmp_path, telegram, agent) as env:
        await telegram.send_text(ALICE, ALICE, "one")
        await telegram.wait_for(lambda: texts(telegram, ALICE), what="a reply")
        await telegram.send_text(ALICE, ALICE, "two")
        await telegram.wait_for(lambda: said(telegram, ALICE, "You said: two"), what="answer")
        login = await env.app.bridge.logins.current()
    assert login is not None and login.record.invalid_at is None
    assert "couldn't answer" in texts(telegram, ALICE)[0]
    assert texts(telegram, ADMIN) == []


async def test_an_expired_token_tells_users_and_admins_once(
    tmp_path: Path, telegram: TelegramStandIn, agent: MiniMaxAgentStandIn
) -> None:
    setup(telegram)
    async with running_agent_bridge(tmp_path, telegram, agent) as env:
        agent.revoke(env.auth.token)
        await telegram.send_text(ALICE, ALICE, "hello?")
        await telegram.wait_for(lambda: said(telegram, ALICE, "expired"), what="Alice told")
        await telegram.send_text(BOB, BOB, "anyone?")
        await telegram.wait_for(lambda: said(telegram, BOB, "expired"), what="Bob told")
        await telegram.wait_for(lambda: texts(telegram, ADMIN), what="the admin told")
    [notice] = texts(telegram, ADMIN)
    assert "/login" in notice and "MiniMax Agent" in notice
    assert env.auth.token not in notice


async def test_quota_words_reach_the_user_and_the_partial_answer_is_kept(
    tmp_path: Path, telegram: TelegramStandIn, agent: MiniMaxAgentStandIn
) -> None:
    setup(telegram)
    agent.fail_next(AgentFault.QUOTA_ERROR)
    async with running_agent_bridge(tmp_path, telegram, agent):
        await telegram.send_text(ALICE, ALICE, "hello")
        await telegram.wait_for(lambda: texts(telegram, ALICE), what="the reply")
    [reply] = texts(telegram, ALICE)
    assert reply.startswith("You said")
    assert "try again" in reply.lower()


async def test_after_the_upstream_changes_a_chat_starts_afresh_and_is_told_once(
    tmp_path: Path, telegram: TelegramStandIn, agent: MiniMaxAgentStandIn
) -> None:
    setup(telegram)
    database_url = sqlite_url(tmp_path)
    database = Database(database_url)
    await ensure_schema(database, auto_migrate=True)
    conversations = ConversationStore(database)
    record = await conversations.get_or_create(ConversationKey(ALICE))
    await conversations.record_answer(
        record.id, upstream_chat_id="380000000001", token_fingerprint="old", upstream="hailuo"
    )
    await database.close()
    async with running_agent_bridge(tmp_path, telegram, agent, database_url=database_url) as env:
        await telegram.send_text(ALICE, ALICE, "one")
        await telegram.wait_for(lambda: said(telegram, ALICE, "You said: one"), what="one")
        await telegram.send_text(ALICE, ALICE, "two")
        await telegram.wait_for(lambda: said(telegram, ALICE, "You said: two"), what="two")
        # The final message is shown before the answer's last write: wait for that write.
        await telegram.wait_for(lambda: not env.app.bridge.service.running, what="saved")
        row = await ConversationStore(env.app.database).get(ConversationKey(ALICE))
        answers = await AnswerStore(env.app.database).for_conversation(record.id)
    first, second = texts(telegram, ALICE)
    assert "now talks to MiniMax Agent" in first
    assert "now talks to" not in second
    assert second.startswith("You said: two (message 2 in this session)")
    assert row is not None and row.upstream == "minimax-agent"
    assert [answer.status for answer in answers] == [AnswerStatus.DONE] * 2


async def test_show_reasoning_puts_it_in_a_collapsed_quote_above_the_answer(
    tmp_path: Path, telegram: TelegramStandIn, agent: MiniMaxAgentStandIn
) -> None:
    setup(telegram)
    agent.reasoning = "Short reasoning about the greeting."
    agent.answer_next("Hello!")
    async with running_agent_bridge(tmp_path, telegram, agent, show_reasoning=True):
        await telegram.send_text(GROUP, BOB, "/ask hi")
        await telegram.wait_for(lambda: said(telegram, GROUP, "Hello!"), what="the answer")
    [message] = telegram.bot_messages(GROUP)
    assert message.text == "Short reasoning about the greeting.\n\nHello!"
    [quote] = [e for e in message.entities if e["type"] == "expandable_blockquote"]
    assert (quote["offset"], quote["length"]) == (0, len("Short reasoning about the greeting."))


async def test_a_token_about_to_expire_is_renewed_before_answering(
    tmp_path: Path, telegram: TelegramStandIn, agent: MiniMaxAgentStandIn
) -> None:
    setup(telegram)
    expiring = agent_auth(agent).model_copy(
        update={"token": agent.make_token(AGENT_USER, exp=int(time.time()) + 3600)}
    )
    async with running_agent_bridge(tmp_path, telegram, agent, auth=expiring) as env:
        await telegram.send_text(ALICE, ALICE, "hello")
        await telegram.wait_for(lambda: said(telegram, ALICE, "You said: hello"), what="answer")
        login = await env.app.bridge.logins.current()
    assert agent.renewals == 1
    assert login is not None
    assert isinstance(login.auth, AgentAuth)
    assert login.auth.token != expiring.token, "the renewed token is stored"
    assert login.auth.expires_at is not None
    assert login.auth.expires_at.timestamp() > time.time() + 7 * 86400
    [post] = agent.message_posts
    assert post.headers["token"] == login.auth.token, "the question went with the new token"


async def test_model_offers_the_agents_models_and_the_choice_reaches_it(
    tmp_path: Path, telegram: TelegramStandIn, agent: MiniMaxAgentStandIn
) -> None:
    setup(telegram)
    async with running_agent_bridge(tmp_path, telegram, agent):
        await telegram.send_text(ALICE, ALICE, "/model")
        await telegram.wait_for(lambda: said(telegram, ALICE, "Pick one"), what="the list")
        [menu] = [m for m in telegram.bot_messages(ALICE) if "Pick one" in m.text]
        markup: Any = menu.reply_markup
        names = [row[0]["text"] for row in markup["inline_keyboard"]]
        assert names == ["✓ MiniMax-M3 (default)", "MiniMax-M2.7", "MiniMax-M2.7-highspeed"]
        await telegram.press_button(ALICE, menu.message_id, ALICE, "model:MiniMax-M2.7")
        await telegram.wait_for(lambda: said(telegram, ALICE, "now uses"), what="chosen")
        await telegram.send_text(ALICE, ALICE, "which model?")
        await telegram.wait_for(lambda: said(telegram, ALICE, "You said: which"), what="answer")
    assert agent.message_posts[-1].json()["model"]["model_id"] == "MiniMax-M2.7"


async def test_hailuo_offers_no_model_choice(tmp_path: Path, telegram: TelegramStandIn) -> None:
    setup(telegram)
    hailuo = HailuoStandIn()
    await hailuo.start()
    try:
        async with running_bridge(tmp_path, telegram, hailuo):
            await telegram.send_text(ALICE, ALICE, "/model")
            await telegram.wait_for(lambda: texts(telegram, ALICE), what="a reply")
    finally:
        await hailuo.stop()
    assert texts(telegram, ALICE) == ["Hailuo offers no choice of model."]
