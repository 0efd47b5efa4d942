"""Admins keep the bot logged in: /login (real Chromium), /status, /logout, auth health."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.hailuo import AuthState, fingerprint
from bot.hailuo.login import browser_processes
from tests.bridge_env import ADMIN, running_bridge
from tests.standins.hailuo import HailuoStandIn
from tests.standins.telegram import TelegramStandIn

OTHER_ADMIN, USER = 900_002, 555
needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)",
)


def people(telegram: TelegramStandIn) -> None:
    telegram.add_private_chat(ADMIN, "Ada")
    telegram.add_private_chat(OTHER_ADMIN, "Grace")
    telegram.add_private_chat(USER, "Ulla")


def texts_in(telegram: TelegramStandIn, chat_id: int) -> list[str]:
    return [message.text for message in telegram.bot_messages(chat_id)]


@needs_chromium
async def test_admin_logs_in_and_conversations_start_fresh(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    people(telegram)
    hailuo.login_after = 2.0
    profile = tmp_path / "profile"
    async with running_bridge(
        tmp_path,
        telegram,
        hailuo,
        admin_ids=frozenset({ADMIN, OTHER_ADMIN}),
        login_profile_dir=profile,
    ) as env:
        await telegram.send_text(USER, USER, "before")
        await telegram.wait_for(lambda: "You said: before" in "".join(texts_in(telegram, USER)))
        await telegram.send_text(ADMIN, ADMIN, "/login")
        await telegram.wait_for(
            lambda: "Logged in" in "".join(texts_in(telegram, ADMIN)), what="the login"
        )
        await telegram.wait_for(lambda: texts_in(telegram, OTHER_ADMIN), what="announcement")
        await telegram.send_text(USER, USER, "after")
        await telegram.wait_for(lambda: "You said: after" in "".join(texts_in(telegram, USER)))
        current = await env.app.bridge.logins.current()

    new_fingerprint = fingerprint(hailuo.login_token)
    assert current is not None
    assert isinstance(current.auth, AuthState)
    assert current.auth.token == hailuo.login_token
    assert current.record.obtained_by == ADMIN
    status = telegram.bot_messages(ADMIN)[0]
    assert status.text == f"✅ Logged in to Hailuo: login {new_fingerprint}."
    assert status.edits >= 2, "one status message, edited as the login advanced"
    assert new_fingerprint in texts_in(telegram, OTHER_ADMIN)[0]
    assert hailuo.login_token not in texts_in(telegram, OTHER_ADMIN)[0]
    before, after = hailuo.requests[0], hailuo.requests[-1]
    assert before.headers["token"] == env.auth.token
    assert after.headers["token"] == hailuo.login_token
    assert after.fields["chatID"] == "0", "the old token's conversation is not continued"
    assert browser_processes(profile) == []


@needs_chromium
async def test_screenshot_second_login_and_cancel(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    people(telegram)
    hailuo.login_after = None
    profile = tmp_path / "profile"
    async with running_bridge(tmp_path, telegram, hailuo, login_profile_dir=profile):
        await telegram.send_text(ADMIN, ADMIN, "/login")
        await telegram.wait_for(
            lambda: any("Log in there" in t for t in texts_in(telegram, ADMIN)), what="opened"
        )
        await telegram.send_text(ADMIN, ADMIN, "/login")
        await telegram.wait_for(
            lambda: any("already running" in t for t in texts_in(telegram, ADMIN))
        )
        await telegram.send_text(ADMIN, ADMIN, "/login screenshot")
        await telegram.wait_for(lambda: telegram.photos, what="a screenshot")
        await telegram.send_text(ADMIN, ADMIN, "/login cancel")
        await telegram.wait_for(
            lambda: telegram.bot_messages(ADMIN)[0].text == "✖️ Login cancelled.", what="cancel"
        )
        await telegram.wait_for(lambda: not browser_processes(profile), what="browser gone")
    assert hailuo.page_visits == 1, "the second /login did not start another browser"
    assert telegram.photos[0][1].startswith(b"\x89PNG")


async def test_non_admins_cannot_log_in_or_out(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    people(telegram)
    async with running_bridge(tmp_path, telegram, hailuo) as env:
        await telegram.send_text(USER, USER, "/login")
        await telegram.send_text(USER, USER, "/logout")
        await telegram.send_text(USER, USER, "/status")
        await telegram.wait_for(lambda: len(texts_in(telegram, USER)) == 3)
        still = await env.app.bridge.logins.current()
    replies = texts_in(telegram, USER)
    assert replies[:2] == ["Only the bot's admins can do that."] * 2
    assert replies[2] == "✅ Working."
    assert hailuo.page_visits == 0, "no browser was started"
    assert still is not None


async def test_status_and_logout_for_admins(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    people(telegram)
    async with running_bridge(tmp_path, telegram, hailuo) as env:
        await telegram.send_text(USER, USER, "hello")
        await telegram.wait_for(lambda: texts_in(telegram, USER))
        await telegram.wait_for(lambda: not env.app.bridge.service.running)
        await telegram.send_text(ADMIN, ADMIN, "/status")
        await telegram.wait_for(lambda: texts_in(telegram, ADMIN))
        await telegram.send_text(ADMIN, ADMIN, "/logout")
        await telegram.wait_for(lambda: len(texts_in(telegram, ADMIN)) == 2)
        await telegram.send_text(USER, USER, "again")
        await telegram.wait_for(lambda: len(texts_in(telegram, USER)) == 2)
        await telegram.send_text(USER, USER, "/status")
        await telegram.wait_for(lambda: len(texts_in(telegram, USER)) == 3)

    status = texts_in(telegram, ADMIN)[0]
    assert env.auth.fingerprint in status
    assert env.auth.token not in status
    assert "Conversations: 1" in status
    assert "Answers in flight: 0" in status
    assert "done 1" in status
    assert "Database: sqlite" in status
    assert "Last successful answer: " in status
    assert "never" not in status.split("Last successful answer: ")[1].split("\n")[0]
    assert "removed" in texts_in(telegram, ADMIN)[1]
    assert "isn't logged in" in texts_in(telegram, USER)[1]
    assert "needs an admin to log in" in texts_in(telegram, USER)[2]
    assert "status" in {c["command"] for c in telegram.commands[f"chat:{ADMIN}"]}
