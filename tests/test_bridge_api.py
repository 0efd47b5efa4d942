"""The whole bot with UPSTREAM=minimax-api (and as UPSTREAM_FALLBACK): stored history, /new,
/forget, the history budget, reasoning kept out, /model, failover from a rejected web login, and
the API key kept out of every log line — against the Telegram and OpenAI-compatible stand-ins."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.storage.database import Database
from bot.storage.models import TurnRow
from tests.bridge_env import (
    ADMIN,
    ApiBridgeEnv,
    agent_auth,
    api_settings,
    running_agent_bridge,
    running_api_bridge,
    store_login,
)
from tests.standins.minimax_agent import AgentFault, MiniMaxAgentStandIn
from tests.standins.openai_compat import DEFAULT_KEY, Fault, OpenAICompatStandIn
from tests.standins.telegram import StoredMessage, TelegramStandIn

ALICE, BOB = 1801, 1802
GROUP = -1001800
REASONING = "PRIVATE-REASONING-7f3a: the user wants an echo."


@pytest.fixture
async def api() -> AsyncIterator[OpenAICompatStandIn]:
    async with OpenAICompatStandIn() as standin:
        standin.default_reasoning = lambda _: REASONING
        yield standin


def setup(telegram: TelegramStandIn) -> None:
    telegram.add_private_chat(ALICE, "Alice")
    telegram.add_private_chat(BOB, "Bob")
    telegram.add_private_chat(ADMIN, "Admin")
    telegram.add_group(GROUP, "Team", admins={ALICE})


def texts(telegram: TelegramStandIn, chat_id: int) -> list[str]:
    return [message.text for message in telegram.bot_messages(chat_id)]


def said(telegram: TelegramStandIn, chat_id: int, words: str) -> bool:
    return any(words in text for text in texts(telegram, chat_id))


async def message_saying(telegram: TelegramStandIn, chat_id: int, words: str) -> StoredMessage:
    """The bot's message with buttons that says `words`, once it is there."""
    await telegram.wait_for(lambda: said(telegram, chat_id, words), what=words)
    [found] = [m for m in telegram.bot_messages(chat_id) if words in m.text]
    return found


def conversation_of(api: OpenAICompatStandIn, index: int = -1) -> list[tuple[str, str]]:
    """(role, content) of one request's messages."""
    return [(m["role"], m["content"]) for m in api.chat_requests[index].messages]


async def ask(env: ApiBridgeEnv, chat_id: int, user_id: int, text: str, expect: str) -> None:
    """Ask and wait until the answer is shown and saved (its exchange stored)."""
    await env.telegram.send_text(chat_id, user_id, text)
    await env.telegram.wait_for(lambda: said(env.telegram, chat_id, expect), what=expect)
    await env.telegram.wait_for(lambda: not env.app.bridge.service.running, what="saved")


async def stored_turns(database_url: str) -> list[TurnRow]:
    database = Database(database_url)
    try:
        async with database.reading() as session:
            return list(await session.scalars(select(TurnRow).order_by(TurnRow.id)))
    finally:
        await database.close()


async def test_a_second_question_carries_the_first_exchange_and_reasoning_stays_out(
    tmp_path: Path, telegram: TelegramStandIn, api: OpenAICompatStandIn
) -> None:
    setup(telegram)
    async with running_api_bridge(tmp_path, telegram, api, system_prompt="You are terse.") as env:
        await ask(env, ALICE, ALICE, "first", "Echo: first")
        await ask(env, ALICE, ALICE, "second", "Echo: second")
    assert conversation_of(api) == [
        ("system", "You are terse."),
        ("user", "first"),
        ("assistant", "Echo: first"),
        ("user", "second"),
    ]
    assert all(request.reasoning_split for request in api.chat_requests)
    assert texts(telegram, ALICE) == ["Echo: first", "Echo: second"]
    assert not any(REASONING in frame for frame in telegram.draft_frames(ALICE))
    turns = await stored_turns(env.database_url)
    assert [(turn.question, turn.answer, turn.upstream) for turn in turns] == [
        ("first", "Echo: first", "minimax-api"),
        ("second", "Echo: second", "minimax-api"),
    ]
    assert telegram.rate_limited == []


async def test_inline_think_tags_never_reach_the_chat_or_the_history(
    tmp_path: Path, telegram: TelegramStandIn, api: OpenAICompatStandIn
) -> None:
    """A server that ignores reasoning_split and inlines <think>…</think>, tags split across
    chunks: the reasoning is neither shown nor stored nor sent back as history."""
    setup(telegram)
    api.ignore_reasoning_split = True
    async with running_api_bridge(tmp_path, telegram, api) as env:
        await ask(env, ALICE, ALICE, "one", "Echo: one")
        await ask(env, ALICE, ALICE, "two", "Echo: two")
    assert texts(telegram, ALICE) == ["Echo: one", "Echo: two"]
    everything = "".join(telegram.draft_frames(ALICE)) + "".join(texts(telegram, ALICE))
    assert "think>" not in everything
    assert REASONING not in everything
    assert conversation_of(api)[1] == ("assistant", "Echo: one")
    assert all(REASONING not in turn.answer for turn in await stored_turns(env.database_url))


async def test_new_starts_empty_and_forget_empties_after_confirmation(
    tmp_path: Path, telegram: TelegramStandIn, api: OpenAICompatStandIn
) -> None:
    setup(telegram)
    async with running_api_bridge(tmp_path, telegram, api) as env:
        await ask(env, ALICE, ALICE, "one", "Echo: one")
        await telegram.send_text(ALICE, ALICE, "/new")
        await telegram.wait_for(lambda: said(telegram, ALICE, "fresh"), what="/new done")
        await ask(env, ALICE, ALICE, "two", "Echo: two")
        assert conversation_of(api) == [("user", "two")]
        await ask(env, ALICE, ALICE, "three", "Echo: three")
        assert len(conversation_of(api)) == 3

        await telegram.send_text(ALICE, ALICE, "/forget")
        confirm = await message_saying(telegram, ALICE, "cannot be undone")
        await telegram.press_button(ALICE, confirm.message_id, ALICE, "forget:1")
        await telegram.wait_for(lambda: said(telegram, ALICE, "Forgotten: 2"), what="forgotten")
        await ask(env, ALICE, ALICE, "four", "Echo: four")
    assert conversation_of(api) == [("user", "four")]
    assert [turn.question for turn in await stored_turns(env.database_url)] == ["four"]


async def test_forget_in_a_group_is_for_its_admins(
    tmp_path: Path, telegram: TelegramStandIn, api: OpenAICompatStandIn
) -> None:
    setup(telegram)
    async with running_api_bridge(tmp_path, telegram, api) as env:
        await ask(env, GROUP, BOB, "/ask hello", "Echo: Bob: hello")
        await telegram.send_text(GROUP, BOB, "/forget")
        await telegram.wait_for(lambda: said(telegram, GROUP, "Only the group's admins"), what="no")
        await telegram.send_text(GROUP, ALICE, "/forget")
        confirm = await message_saying(telegram, GROUP, "cannot be undone")
        await telegram.press_button(GROUP, confirm.message_id, BOB, "forget:1")  # not an admin
        await telegram.wait_for(lambda: telegram.calls_of("answerCallbackQuery"), what="refusal")
        assert len(await stored_turns(env.database_url)) == 1
        await telegram.press_button(GROUP, confirm.message_id, ALICE, "forget:1")
        await telegram.wait_for(lambda: said(telegram, GROUP, "Forgotten: 1"), what="forgotten")
    assert await stored_turns(env.database_url) == []


async def test_the_history_budget_drops_the_oldest_whole_exchanges(
    tmp_path: Path, telegram: TelegramStandIn, api: OpenAICompatStandIn
) -> None:
    setup(telegram)
    api.answer_for = lambda text: f"Echo: {text} " + "y" * 380
    async with running_api_bridge(tmp_path, telegram, api, history_max_chars=1000) as env:
        for word in ("alpha", "bravo", "charlie", "delta"):
            await ask(env, ALICE, ALICE, word, f"Echo: {word}")
    # Each exchange is about 390 characters: two fit in 1000, the third does not.
    sent = conversation_of(api)
    assert [content for role, content in sent if role == "user"] == ["bravo", "charlie", "delta"]
    assert sent[-1] == ("user", "delta")


async def test_a_shared_group_history_keeps_the_speakers(
    tmp_path: Path, telegram: TelegramStandIn, api: OpenAICompatStandIn
) -> None:
    setup(telegram)
    async with running_api_bridge(tmp_path, telegram, api) as env:
        await ask(env, GROUP, ALICE, "/ask I like tea", "Echo: Alice: I like tea")
        await ask(env, GROUP, BOB, "/ask and I coffee", "Echo: Bob: and I coffee")
    assert conversation_of(api) == [
        ("user", "Alice: I like tea"),
        ("assistant", "Echo: Alice: I like tea"),
        ("user", "Bob: and I coffee"),
    ]


async def test_model_lists_buttons_and_the_choice_is_sent_and_shown(
    tmp_path: Path, telegram: TelegramStandIn, api: OpenAICompatStandIn
) -> None:
    setup(telegram)
    async with running_api_bridge(tmp_path, telegram, api) as env:
        await telegram.send_text(ALICE, ALICE, "/model")
        menu = await message_saying(telegram, ALICE, "Pick one")
        markup: Any = menu.reply_markup
        buttons = [row[0] for row in markup["inline_keyboard"]]
        assert [button["text"] for button in buttons] == [
            "✓ MiniMax-M3 (default)",
            "MiniMax-M2.7",
            "MiniMax-M2.7-highspeed",
        ]
        await telegram.press_button(ALICE, menu.message_id, ALICE, buttons[2]["callback_data"])
        await telegram.wait_for(lambda: said(telegram, ALICE, "now uses"), what="chosen")
        await ask(env, ALICE, ALICE, "fast please", "Echo: fast please")
        assert api.chat_requests[-1].model == "MiniMax-M2.7-highspeed"
        await ask(env, BOB, BOB, "default for me", "Echo: default for me")
        assert api.chat_requests[-1].model == "MiniMax-M3"
        # A forged name is refused and changes nothing.
        await telegram.press_button(ALICE, menu.message_id, ALICE, "model:gpt-9")
        await telegram.wait_for(
            lambda: any(
                "not offered" in str(call.params.get("text"))
                for call in telegram.calls_of("answerCallbackQuery")
            ),
            what="refusal",
        )


async def test_a_group_model_is_changed_by_its_admins_only(
    tmp_path: Path, telegram: TelegramStandIn, api: OpenAICompatStandIn
) -> None:
    setup(telegram)
    async with running_api_bridge(tmp_path, telegram, api) as env:
        await telegram.send_text(GROUP, BOB, "/model")
        menu = await message_saying(telegram, GROUP, "Pick one")
        await telegram.press_button(GROUP, menu.message_id, BOB, "model:MiniMax-M2.7")
        await telegram.wait_for(lambda: telegram.calls_of("answerCallbackQuery"), what="no")
        await ask(env, GROUP, BOB, "/ask hi", "Echo: Bob: hi")
        assert api.chat_requests[-1].model == "MiniMax-M3"
        await telegram.press_button(GROUP, menu.message_id, ALICE, "model:MiniMax-M2.7")
        await telegram.wait_for(lambda: said(telegram, GROUP, "now uses"), what="chosen")
        await ask(env, GROUP, BOB, "/ask again", "Echo: Bob: again")
    assert api.chat_requests[-1].model == "MiniMax-M2.7"


async def test_api_errors_reach_the_user_and_the_key_never_reaches_a_log(
    tmp_path: Path,
    telegram: TelegramStandIn,
    api: OpenAICompatStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    setup(telegram)
    caplog.set_level(logging.DEBUG)
    api.fail_next(Fault.RATE_LIMITED)
    async with running_api_bridge(tmp_path, telegram, api) as env:
        await ask(env, ALICE, ALICE, "busy?", "try again in 7 seconds")
        api.api_keys.clear()  # the key is revoked: chat and the /models probe both refuse it
        await ask(env, ALICE, ALICE, "key?", "API key was refused")
        await ask(env, BOB, BOB, "key again?", "API key was refused")
        await telegram.wait_for(lambda: texts(telegram, ADMIN), what="the admin told")
        api.api_keys.add(DEFAULT_KEY)
        await ask(env, ALICE, ALICE, "back", "Echo: back")
    [notice] = texts(telegram, ADMIN)
    assert "MINIMAX_API_KEY" in notice
    records = "\n".join(record.getMessage() for record in caplog.records)
    assert "401" in records or "refused" in records
    assert DEFAULT_KEY not in records
    assert DEFAULT_KEY not in "\n".join(call.params.get("text", "") for call in telegram.calls)
    # A failed question is not an exchange: the history holds only what was answered.
    assert [turn.question for turn in await stored_turns(env.database_url)] == ["back"]


async def test_failover_from_a_rejected_web_login_keeps_the_history(
    tmp_path: Path,
    telegram: TelegramStandIn,
    agent: MiniMaxAgentStandIn,
    api: OpenAICompatStandIn,
) -> None:
    """MiniMax Agent answers, its login is revoked: the API answers with the stored history,
    says so, admins are told once; after a new login the agent answers again."""
    setup(telegram)
    fallback = {"upstream_fallback": "minimax-api", **api_settings(api)}
    async with running_agent_bridge(tmp_path, telegram, agent, **fallback) as env:
        await telegram.send_text(ALICE, ALICE, "remember 42")
        await telegram.wait_for(lambda: said(telegram, ALICE, "You said: remember 42"), what="1")
        await telegram.wait_for(lambda: not env.app.bridge.service.running, what="saved")
        agent.revoke(env.auth.token)
        await telegram.send_text(ALICE, ALICE, "what number?")
        await telegram.wait_for(lambda: said(telegram, ALICE, "Echo: what number?"), what="2")
        await telegram.send_text(BOB, BOB, "hello")
        await telegram.wait_for(lambda: said(telegram, BOB, "Echo: hello"), what="3")
        await telegram.wait_for(lambda: not env.app.bridge.service.running, what="saved")
        [(_, first), (role, answer), last] = conversation_of(api, 0)
        assert (first, role, last) == ("remember 42", "assistant", ("user", "what number?"))
        assert answer.startswith("You said: remember 42"), "MiniMax Agent's answer, as shown"
        second = texts(telegram, ALICE)[1]
        assert "Answered through MiniMax API while the MiniMax Agent login is renewed" in second
        await telegram.wait_for(lambda: texts(telegram, ADMIN), what="admins told")
        metrics = env.app.metrics.render().decode()
        assert 'hailuo_bridge_fallback_answers_total{reason="login"} 2.0' in metrics
        # An admin logs in again: the next question goes to MiniMax Agent.
        await store_login(env.app.settings.database_url, agent_auth(agent))
        await telegram.send_text(ALICE, ALICE, "and now?")
        await telegram.wait_for(lambda: said(telegram, ALICE, "You said: and now?"), what="4")
    [admin_note] = texts(telegram, ADMIN)  # one notice: the failover (it says to /login)
    assert "MiniMax API" in admin_note and "/login" in admin_note
    assert len(api.chat_requests) == 2
    assert "Answered through" not in texts(telegram, ALICE)[-1]


async def test_failover_when_the_web_upstream_is_down(
    tmp_path: Path,
    telegram: TelegramStandIn,
    agent: MiniMaxAgentStandIn,
    api: OpenAICompatStandIn,
) -> None:
    setup(telegram)
    fallback = {"upstream_fallback": "minimax-api", **api_settings(api)}
    async with running_agent_bridge(tmp_path, telegram, agent, **fallback) as env:
        # Down twice: whether the second question finds the primary resting (30 s) or tries
        # it again, the API answers it (the back-off itself: test_failover_backoff_*).
        agent.fail_next(AgentFault.SERVER_ERROR, AgentFault.SERVER_ERROR)
        await telegram.send_text(ALICE, ALICE, "anyone there?")
        await telegram.wait_for(lambda: said(telegram, ALICE, "Echo: anyone there?"), what="1")
        await telegram.wait_for(lambda: not env.app.bridge.service.running, what="saved")
        await telegram.send_text(ALICE, ALICE, "still?")
        await telegram.wait_for(lambda: said(telegram, ALICE, "Echo: still?"), what="2")
        await telegram.wait_for(lambda: texts(telegram, ADMIN), what="admins told")
        login = await env.app.bridge.service.logins.current()
    assert login is not None and login.record.invalid_at is None, "an outage is not a dead login"
    assert all("is unavailable" in text for text in texts(telegram, ALICE))
    [notice] = texts(telegram, ADMIN)
    assert "until it recovers" in notice


async def test_stop_reaches_an_answer_the_fallback_streams(
    tmp_path: Path,
    telegram: TelegramStandIn,
    agent: MiniMaxAgentStandIn,
    api: OpenAICompatStandIn,
) -> None:
    setup(telegram)
    api.gate = asyncio.Event()  # the API holds its stream after the first chunk
    fallback = {"upstream_fallback": "minimax-api", **api_settings(api)}
    async with running_agent_bridge(tmp_path, telegram, agent, **fallback) as env:
        agent.fail_next(AgentFault.SERVER_ERROR)
        await telegram.send_text(ALICE, ALICE, "long one")
        await telegram.wait_for(lambda: api.streams_open == 1, what="the API streaming")
        await telegram.send_text(ALICE, ALICE, "/stop")
        await telegram.wait_for(lambda: said(telegram, ALICE, "Stopped"), what="stopped")
        await api.wait_streams_closed(timeout=60)
        await telegram.wait_for(lambda: not env.app.bridge.service.running, what="saved")
    assert len(api.chat_requests) == 1


async def test_status_shows_the_chats_model(
    tmp_path: Path, telegram: TelegramStandIn, api: OpenAICompatStandIn
) -> None:
    setup(telegram)
    async with running_api_bridge(tmp_path, telegram, api):
        await telegram.send_text(ADMIN, ADMIN, "/model")
        menu = await message_saying(telegram, ADMIN, "Pick one")
        await telegram.press_button(ADMIN, menu.message_id, ADMIN, "model:MiniMax-M2.7")
        await telegram.wait_for(lambda: said(telegram, ADMIN, "now uses"), what="chosen")
        await telegram.send_text(ADMIN, ADMIN, "/status")
        await telegram.wait_for(lambda: said(telegram, ADMIN, "Model here"), what="status")
    [status] = [text for text in texts(telegram, ADMIN) if "Model here" in text]
    assert "Model here: MiniMax-M2.7" in status
    assert "Upstream: MiniMax API" in status
