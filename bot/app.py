"""The bot process: wiring, start-up checks, polling, and a graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramUnauthorizedError
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    User,
)

from bot.config import ConfigError, Settings
from bot.hailuo import HailuoClient
from bot.i18n import DEFAULT_LANGUAGE, LANGUAGES, Translator, translator
from bot.services.answering import AnswerService
from bot.services.factories import hailuo_client
from bot.services.login_runner import LoginRunner, login_options
from bot.storage.database import Database
from bot.storage.migrations import ensure_schema
from bot.telegram.bridge import Bridge
from bot.telegram.languages import Languages
from bot.telegram.middlewares import AccessMiddleware, LanguageMiddleware
from bot.telegram.notifier import TelegramAdminNotifier
from bot.telegram.pacer import Pacer, PacingLimits
from bot.telegram.routers import all_routers
from bot.telegram.session import create_bot

log = logging.getLogger(__name__)

PRIVATE_COMMANDS = ("start", "help", "new", "stop", "title", "lang")
GROUP_COMMANDS = ("ask", "new", "stop", "title", "context", "lang", "help")
ADMIN_COMMANDS = ("login", "status", "logout")


def _commands(names: tuple[str, ...], t: Translator) -> list[BotCommand]:
    return [BotCommand(command=name, description=t(f"command_{name}")) for name in names]


@dataclass
class BotApp:
    settings: Settings
    database: Database
    pacer: Pacer
    bot: Bot
    bridge: Bridge
    dispatcher: Dispatcher

    @classmethod
    async def create(cls, settings: Settings) -> BotApp:
        token = settings.require_bot_token()
        database = Database(settings.database_url)
        try:
            revision = await ensure_schema(database, auto_migrate=settings.auto_migrate)
        except BaseException:
            await database.close()
            raise
        log.info("database ready (%s, schema %s)", database.engine_name, revision)
        pacer = Pacer(
            PacingLimits(
                global_per_second=settings.pacing_global_per_second,
                chat_interval=settings.pacing_chat_interval,
                group_per_minute=settings.pacing_group_per_minute,
            )
        )
        bot = create_bot(token, pacer, settings.telegram_api_url)
        client = hailuo_client(settings)
        languages = Languages(database)
        notifier = TelegramAdminNotifier(bot, settings.admin_ids, languages)
        service = AnswerService(database, client, notifier)
        bridge = Bridge(bot, pacer, service, database, settings, languages)
        await bridge.load()
        runner = LoginRunner(login_options(settings), bridge.logins)
        dispatcher = Dispatcher(
            bridge=bridge, hailuo=client, runner=runner, started_at=time.monotonic()
        )
        access = AccessMiddleware(
            settings.allowed_user_ids, settings.allowed_chat_ids, settings.admin_ids
        )
        dispatcher.update.outer_middleware(LanguageMiddleware(languages))
        dispatcher.message.outer_middleware(access)
        dispatcher.callback_query.outer_middleware(access)
        dispatcher.include_routers(*all_routers())
        dispatcher.startup.register(cls._on_startup)
        dispatcher.shutdown.register(cls._on_shutdown)
        return cls(settings, database, pacer, bot, bridge, dispatcher)

    async def serve(self, *, handle_signals: bool = True) -> None:
        """Long polling until stopped (SIGINT/SIGTERM or `stop()`)."""
        try:
            me = await self.bot.me()  # cached: filters then never wait for it
        except TelegramUnauthorizedError:
            raise ConfigError(
                "BOT_TOKEN was rejected by Telegram: check it with @BotFather"
            ) from None
        log.info("running as @%s", me.username)
        await self.dispatcher.start_polling(self.bot, handle_signals=handle_signals, app=self)

    async def _whoami(self) -> User:
        """Check the token; while Telegram cannot be reached, keep trying (a bot must outlive
        network outages), saying so in the log."""
        delay = 1.0
        while True:
            try:
                return await self.bot.me()  # cached: filters then never wait for it
            except TelegramUnauthorizedError:
                raise ConfigError(
                    "BOT_TOKEN was rejected by Telegram: check it with @BotFather"
                ) from None
            except TelegramNetworkError as exc:
                log.warning("cannot reach Telegram (%s); retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)

    async def stop(self) -> None:
        await self.dispatcher.stop_polling()

    async def close(self) -> None:
        stats = self.bridge.service.stats
        log.info(
            "served %d answers with %d database writes and %d Telegram permits (%d 429s)",
            stats.started,
            self.database.writes,
            self.pacer.granted,
            self.pacer.penalties,
        )
        await self.pacer.close()
        await self.bot.session.close()
        await self.database.close()

    @staticmethod
    async def _on_startup(bot: Bot, bridge: Bridge) -> None:
        for language in LANGUAGES:
            t = translator(language)
            code = None if language == DEFAULT_LANGUAGE else language
            for names, scope in (
                (PRIVATE_COMMANDS, BotCommandScopeAllPrivateChats()),
                (GROUP_COMMANDS, BotCommandScopeAllGroupChats()),
            ):
                await bot.set_my_commands(_commands(names, t), scope=scope, language_code=code)
        for admin in bridge.settings.admin_ids:
            t = bridge.languages.for_user(admin)
            try:
                await bot.set_my_commands(
                    _commands(PRIVATE_COMMANDS + ADMIN_COMMANDS, t),
                    scope=BotCommandScopeChat(chat_id=admin),
                )
            except TelegramAPIError as exc:  # e.g. the admin never opened a chat with the bot
                log.info("admin commands not set for %s: %s", admin, exc)
        await bridge.recover_interrupted()

    @staticmethod
    async def _on_shutdown(bridge: Bridge, hailuo: HailuoClient, runner: LoginRunner) -> None:
        await runner.cancel_and_wait()
        await bridge.shutdown()
        await hailuo.close()


async def run(settings: Settings) -> int:
    app = await BotApp.create(settings)
    try:
        await app.serve()
    finally:
        await app.close()
    return 0
