"""The browser login with real Chromium under nodriver, against a page that imitates hailuo.ai."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
from pathlib import Path

import pytest

from bot.hailuo import AuthState, Finished, HailuoClient
from bot.hailuo.login import (
    BrowserLogin,
    LoginDone,
    LoginEvent,
    LoginLink,
    LoginOptions,
    LoginStage,
    LoginTimeout,
    browser_processes,
)
from tests.standins.hailuo import HailuoStandIn

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
    reason="Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)",
)


def options(hailuo: HailuoStandIn, tmp_path: Path, **changes: object) -> LoginOptions:
    base = LoginOptions(
        base_url=hailuo.base_url,
        profile_dir=tmp_path / "profile",
        timeout=60,
        poll_interval=0.2,
        progress_every=0.5,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


async def run(login: BrowserLogin) -> list[LoginEvent]:
    return [event async for event in login.events()]


async def test_login_captures_a_working_auth_state(hailuo: HailuoStandIn, tmp_path: Path) -> None:
    hailuo.login_after = 1.5
    flow = options(hailuo, tmp_path, login_url="https://vnc.example/")
    events = await run(BrowserLogin(flow))

    assert events[0] == LoginLink("https://vnc.example/")
    stages = [event.stage for event in events if isinstance(event, LoginStage)]
    assert stages[:2] == ["starting", "opened"]
    assert "waiting" in stages
    done = events[-1]
    assert isinstance(done, LoginDone)
    auth = done.auth
    assert isinstance(auth, AuthState)
    assert auth.token == hailuo.login_token
    assert auth.cookies["sessionid"] == "page-session-cookie"
    assert auth.cookies["_ga"] == "GA1.1.77"
    user_agent = auth.headers["user-agent"]
    assert "Chrome/" in user_agent
    assert "HeadlessChrome" not in user_agent
    assert auth.headers["referer"] == hailuo.base_url + "/"
    assert auth.path_and_query.startswith("/v4/api/chat/msg?device_platform=web&biz_id=2")
    assert "uuid=3f1c2d4e-1111-4000-8000-123456789abc" in auth.path_and_query
    assert "device_id=301234567890999999" in auth.path_and_query
    assert f"unix={auth.timestamp}" in auth.path_and_query
    assert browser_processes(flow.profile_dir) == []

    # The captured login is accepted by the stand-in's signature and token checks.
    async with HailuoClient(hailuo.base_url) as client:
        answer = [event async for event in client.stream(auth, "hello from the new login")]
    assert isinstance(answer[-1], Finished)
    assert hailuo.requests[-1].outcome == "answered"


async def test_login_times_out_and_leaves_no_browser(hailuo: HailuoStandIn, tmp_path: Path) -> None:
    hailuo.login_after = None
    flow = options(hailuo, tmp_path, timeout=3)
    with pytest.raises(LoginTimeout, match="3 s"):
        await run(BrowserLogin(flow))
    assert hailuo.page_visits == 1
    assert browser_processes(flow.profile_dir) == []


async def test_cancelled_login_leaves_no_browser(hailuo: HailuoStandIn, tmp_path: Path) -> None:
    hailuo.login_after = None
    flow = options(hailuo, tmp_path)
    login = BrowserLogin(flow)
    opened = asyncio.Event()

    async def drive() -> None:
        async for event in login.events():
            if isinstance(event, LoginStage) and event.stage == "opened":
                opened.set()

    task = asyncio.create_task(drive())
    async with asyncio.timeout(60):
        await opened.wait()
    screenshot = await login.screenshot()
    assert screenshot is not None
    assert screenshot.startswith(b"\x89PNG")
    assert browser_processes(flow.profile_dir) != []
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert browser_processes(flow.profile_dir) == []
