"""The whole bot, running for real against the Telegram and Hailuo stand-ins."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.app import BotApp
from bot.config import Settings
from bot.hailuo import AuthState
from bot.minimax_agent.credentials import AgentAuth
from bot.services.logins import LoginService
from bot.storage.database import Database
from bot.storage.migrations import ensure_schema
from bot.upstream import Credentials
from tests.conftest import make_auth, sqlite_url
from tests.standins.hailuo import HailuoStandIn
from tests.standins.minimax_agent import MiniMaxAgentStandIn
from tests.standins.openai_compat import OpenAICompatStandIn
from tests.standins.telegram import TelegramStandIn

BOT_TOKEN = "123456:TEST-bot-token-secret"
ADMIN = 900_001
AGENT_USER = "900000000000000123"  # the stand-in account's realUserID


@dataclass
class BridgeEnv:
    telegram: TelegramStandIn
    hailuo: HailuoStandIn
    app: BotApp
    auth: AuthState
    task: asyncio.Task[None]

    async def stop(self) -> None:
        await self.app.stop()
        async with asyncio.timeout(60):
            await self.task


async def store_login(database_url: str, auth: Credentials) -> None:
    database = Database(database_url)
    try:
        await ensure_schema(database, auto_migrate=True)
        await LoginService(database, auth.UPSTREAM).save(auth, source="test")
    finally:
        await database.close()


@contextlib.asynccontextmanager
async def running_bridge(
    tmp_path: Path,
    telegram: TelegramStandIn,
    hailuo: HailuoStandIn,
    *,
    login: bool = True,
    database_url: str | None = None,
    **settings: Any,
) -> AsyncIterator[BridgeEnv]:
    database_url = database_url or sqlite_url(tmp_path)
    auth = make_auth()
    hailuo.valid_tokens.add(auth.token)
    if login:
        await store_login(database_url, auth)
    defaults: dict[str, Any] = {
        "upstream": "hailuo",
        "hailuo_base_url": hailuo.base_url,
    }
    async with _running(tmp_path, telegram, database_url, {**defaults, **settings}) as (app, task):
        yield BridgeEnv(telegram, hailuo, app, auth, task)


@dataclass
class AgentBridgeEnv:
    telegram: TelegramStandIn
    agent: MiniMaxAgentStandIn
    app: BotApp
    auth: AgentAuth
    task: asyncio.Task[None]

    async def stop(self) -> None:
        await self.app.stop()
        async with asyncio.timeout(60):
            await self.task


def agent_auth(
    agent: MiniMaxAgentStandIn, real_user_id: str = AGENT_USER, **fields: Any
) -> AgentAuth:
    """A stored-login shaped AgentAuth for an account of the stand-in (made if missing)."""
    token = (
        agent.add_account(real_user_id)
        if real_user_id not in agent.accounts
        else (agent.make_token(real_user_id, exp=int(time.time()) + 30 * 86400))
    )
    values: dict[str, Any] = {
        "region": agent.region,
        "token": token,
        "real_user_id": real_user_id,
        "uuid": "4d6c7b10-2f1e-4c3a-9b8d-0123456789ab",
        "device_id": "52718364",
        **fields,
    }
    return AgentAuth(**values)


def agent_settings(agent: MiniMaxAgentStandIn) -> dict[str, Any]:
    return {
        "upstream": "minimax-agent",
        "minimax_region": agent.region,
        "minimax_agent_url": agent.api_url,
        "minimax_agent_stream_url": agent.stream_url,
    }


@contextlib.asynccontextmanager
async def running_agent_bridge(
    tmp_path: Path,
    telegram: TelegramStandIn,
    agent: MiniMaxAgentStandIn,
    *,
    login: bool = True,
    auth: AgentAuth | None = None,
    database_url: str | None = None,
    **settings: Any,
) -> AsyncIterator[AgentBridgeEnv]:
    """The bot with UPSTREAM=minimax-agent against the MiniMax Agent stand-in."""
    database_url = database_url or sqlite_url(tmp_path)
    auth = auth or agent_auth(agent)
    if login:
        await store_login(database_url, auth)
    config = {**agent_settings(agent), **settings}
    async with _running(tmp_path, telegram, database_url, config) as (app, task):
        yield AgentBridgeEnv(telegram, agent, app, auth, task)


@dataclass
class ApiBridgeEnv:
    telegram: TelegramStandIn
    api: OpenAICompatStandIn
    app: BotApp
    database_url: str


def api_settings(api: OpenAICompatStandIn) -> dict[str, Any]:
    """The settings that point `minimax-api` (as UPSTREAM or UPSTREAM_FALLBACK) at the stand-in."""
    return {
        "minimax_api_key": next(iter(api.api_keys)),
        "minimax_api_base_url": api.base_url,
    }


@contextlib.asynccontextmanager
async def running_api_bridge(
    tmp_path: Path,
    telegram: TelegramStandIn,
    api: OpenAICompatStandIn,
    *,
    database_url: str | None = None,
    **settings: Any,
) -> AsyncIterator[ApiBridgeEnv]:
    """The bot with UPSTREAM=minimax-api against the OpenAI-compatible stand-in (no login)."""
    database_url = database_url or sqlite_url(tmp_path)
    config = {"upstream": "minimax-api", **api_settings(api), **settings}
    async with _running(tmp_path, telegram, database_url, config) as (app, _):
        yield ApiBridgeEnv(telegram, api, app, database_url)


@contextlib.asynccontextmanager
async def _running(
    tmp_path: Path, telegram: TelegramStandIn, database_url: str, settings: dict[str, Any]
) -> AsyncIterator[tuple[BotApp, asyncio.Task[None]]]:
    defaults: dict[str, Any] = {
        "admin_ids": frozenset({ADMIN}),
        "shutdown_grace": 5.0,
        "login_profile_dir": tmp_path / "browser-profile",
    }
    config = Settings(
        bot_token=BOT_TOKEN,
        database_url=database_url,
        telegram_api_url=telegram.base_url,
        **{**defaults, **settings},
    )
    app = await BotApp.create(config)
    task = asyncio.create_task(app.serve(handle_signals=False))
    try:
        await telegram.wait_for(lambda: telegram.polls, what="polling to start")
        yield app, task
    finally:
        if not task.done():
            await app.stop()
            async with asyncio.timeout(60):
                await task
        await app.close()
