"""The MiniMax Agent browser login with real Chromium under nodriver, against the stand-in's
imitation of the agent site (a guest token first, the account's JWT once someone logs in)."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.minimax_agent.client import MiniMaxAgentClient
from bot.minimax_agent.credentials import AgentAuth
from bot.minimax_agent.login import AgentLoginCapture
from bot.upstream import Finished
from bot.upstream.browser import (
    BrowserLogin,
    LoginDone,
    LoginEvent,
    LoginOptions,
    LoginTimeout,
    browser_processes,
)
from tests.standins.minimax_agent import MiniMaxAgentStandIn

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
    reason="Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)",
)

ACCOUNT = "900000000000004242"


@pytest.fixture
async def agent() -> AsyncIterator[MiniMaxAgentStandIn]:
    standin = MiniMaxAgentStandIn()
    await standin.start()
    standin.add_account(ACCOUNT, name="Ada")
    standin.login_real_user_id = ACCOUNT
    yield standin
    await standin.stop()


@pytest.fixture
async def client(agent: MiniMaxAgentStandIn) -> AsyncIterator[MiniMaxAgentClient]:
    async with MiniMaxAgentClient(api_url=agent.api_url, stream_url=agent.stream_url) as made:
        yield made


def login(
    agent: MiniMaxAgentStandIn, client: MiniMaxAgentClient, tmp_path: Path, **changes: object
) -> BrowserLogin:
    options = LoginOptions(
        base_url=agent.api_url,
        profile_dir=tmp_path / "profile",
        timeout=60,
        poll_interval=0.2,
        progress_every=0.5,
    )
    options = dataclasses.replace(options, **changes)  # type: ignore[arg-type]
    return BrowserLogin(options, AgentLoginCapture(client, "intl"))


async def run(flow: BrowserLogin) -> list[LoginEvent]:
    return [event async for event in flow.events()]


@pytest.mark.parametrize("token_as_json", [False, True])
async def test_a_verified_login_is_captured_and_a_guest_page_is_not(
    agent: MiniMaxAgentStandIn, client: MiniMaxAgentClient, tmp_path: Path, token_as_json: bool
) -> None:
    agent.login_after = 2.0  # a guest token sits in _token until then
    agent.token_as_json = token_as_json
    flow = login(agent, client, tmp_path)
    events = await run(flow)
    done = events[-1]
    assert isinstance(done, LoginDone)
    auth = done.auth
    assert isinstance(auth, AgentAuth)
    assert auth.token == agent.page_login_token
    assert auth.token != agent.guest_token
    assert auth.real_user_id == ACCOUNT
    assert auth.uuid == agent.page_uuid
    assert auth.device_id == agent.page_device_id
    assert "HeadlessChrome" not in auth.user_agent
    assert auth.expires_at is not None
    infos = [r for r in agent.requests if r.path == "/v1/api/user/info"]
    assert any(r.status == 401 for r in infos), "the guest token was tried and refused"
    assert browser_processes(flow.options.profile_dir) == []
    # The captured login works for a question.
    events_of_answer = [event async for event in client.stream(auth, "hello", None)]
    assert any(isinstance(event, Finished) for event in events_of_answer)


async def test_a_page_that_never_logs_in_times_out_and_leaves_no_browser(
    agent: MiniMaxAgentStandIn, client: MiniMaxAgentClient, tmp_path: Path
) -> None:
    agent.login_after = None
    flow = login(agent, client, tmp_path, timeout=4)
    with pytest.raises(LoginTimeout):
        await run(flow)
    assert browser_processes(flow.options.profile_dir) == []
