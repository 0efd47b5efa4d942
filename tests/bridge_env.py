"""The whole bot, running for real against the Telegram and Hailuo stand-ins."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.app import BotApp
from bot.config import Settings
from bot.hailuo import AuthState
from bot.services.logins import LoginService
from bot.storage.database import Database
from bot.storage.migrations import ensure_schema
from tests.conftest import make_auth, sqlite_url
from tests.standins.hailuo import HailuoStandIn
from tests.standins.telegram import TelegramStandIn

BOT_TOKEN = "123456:TEST-bot-token-secret"
ADMIN = 900_001


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


async def store_login(database_url: str, auth: AuthState) -> None:
    database = Database(database_url)
    try:
        await ensure_schema(database, auto_migrate=True)
        await LoginService(database).save(auth, source="test")
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
        "admin_ids": frozenset({ADMIN}),
        "shutdown_grace": 5.0,
        "login_profile_dir": tmp_path / "browser-profile",
    }
    config = Settings(
        bot_token=BOT_TOKEN,
        database_url=database_url,
        telegram_api_url=telegram.base_url,
        hailuo_base_url=hailuo.base_url,
        **{**defaults, **settings},
    )
    app = await BotApp.create(config)
    task = asyncio.create_task(app.serve(handle_signals=False))
    env = BridgeEnv(telegram, hailuo, app, auth, task)
    try:
        await telegram.wait_for(lambda: telegram.polls, what="polling to start")
        yield env
    finally:
        if not task.done():
            await env.stop()
        await app.close()
