"""The bot process: wiring, start-up checks, polling, and a graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramUnauthorizedError
from aiogram.fsm.storage.base import BaseEventIsolation, DefaultKeyBuilder
from aiogram.fsm.storage.memory import DisabledEventIsolation
from aiogram.fsm.storage.redis import RedisEventIsolation
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    User,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler

from bot.cluster import Cluster
from bot.config import ConfigError, Settings
from bot.i18n import DEFAULT_LANGUAGE, LANGUAGES, Translator, set_upstream_name, translator
from bot.lifecycle import BackgroundLoop, finish_within, stop_tasks
from bot.metrics import Metrics
from bot.services.answering import AnswerService
from bot.services.factories import (
    browser_login,
    build_upstream,
    fallback_endpoint,
    login_source,
)
from bot.services.health import HealthCheck
from bot.services.login_runner import LoginRunner
from bot.services.models import ModelCatalog
from bot.services.upstreams import Endpoint
from bot.services.usage import UsageLimits
from bot.storage.database import Database
from bot.storage.migrations import ensure_schema
from bot.storage.retry import through_outage, transient
from bot.telegram.bridge import Bridge
from bot.telegram.languages import Languages
from bot.telegram.middlewares import AccessMiddleware, LanguageMiddleware, ThrottleMiddleware
from bot.telegram.notifier import TelegramAdminNotifier
from bot.telegram.pacer import Pacer, PacingLimits
from bot.telegram.routers import all_routers
from bot.telegram.routers.admin import send_screenshot
from bot.telegram.session import create_bot
from bot.upstream import Upstream, display_name
from bot.web import WebServer

log = logging.getLogger(__name__)

PRIVATE_COMMANDS = ("start", "help", "new", "stop", "title", "model", "forget", "lang")
GROUP_COMMANDS = ("ask", "new", "stop", "title", "context", "model", "forget", "lang", "help")
ADMIN_COMMANDS = ("login", "status", "logout")
ABANDONED_SWEEP_SECONDS = 60.0
RETENTION_SWEEP_SECONDS = 3600.0
DATABASE_WAIT = 120.0
T = TypeVar("T")


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
    metrics: Metrics
    cluster: Cluster | None = None
    web: WebServer | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _sweeper: BackgroundLoop = field(
        default_factory=lambda: BackgroundLoop("sweep of abandoned answers")
    )
    _retention: BackgroundLoop = field(
        default_factory=lambda: BackgroundLoop("purge of old conversation history")
    )

    @classmethod
    async def create(cls, settings: Settings) -> BotApp:
        token = settings.require_bot_token()
        settings.require_webhook_settings()
        settings.require_upstream_settings()
        database = Database(settings.database_url)
        cluster: Cluster | None = None
        try:
            revision = await _when_reachable(
                lambda: ensure_schema(database, auto_migrate=settings.auto_migrate)
            )
            log.info("database ready (%s, schema %s)", database.engine_name, revision)
            limits = PacingLimits(
                global_per_second=settings.pacing_global_per_second,
                chat_interval=settings.pacing_chat_interval,
                group_per_minute=settings.pacing_group_per_minute,
            )
            if settings.redis_url is not None:
                cluster = await Cluster.connect(
                    settings.redis_url.get_secret_value(),
                    namespace=f"hailuo-bridge:{token.partition(':')[0]}:",
                    instance_id=settings.instance_id,
                    limits=limits,
                    login_timeout=settings.login_timeout,
                )
                await cluster.start()
                log.info("coordinating through Redis as instance %s", settings.instance_id)
            return await cls._assemble(settings, token, database, limits, cluster)
        except BaseException:
            if cluster is not None:
                await cluster.close()
            await database.close()
            raise

    @classmethod
    async def _assemble(
        cls,
        settings: Settings,
        token: str,
        database: Database,
        limits: PacingLimits,
        cluster: Cluster | None,
    ) -> BotApp:
        set_upstream_name(display_name(settings.upstream))
        metrics = Metrics()
        pacer = Pacer(limits, shared=cluster.pacing if cluster else None)
        bot = create_bot(token, pacer, settings.telegram_api_url, metrics=metrics)
        client = build_upstream(settings)
        logins = login_source(settings, database, settings.upstream)
        fallback = fallback_endpoint(settings, database)
        languages = Languages(database)
        notifier = TelegramAdminNotifier(bot, settings.admin_ids, languages)
        service = AnswerService(
            database,
            client,
            notifier,
            logins=logins,
            fallback=fallback,
            history_chars=settings.history_max_chars,
            queue=cluster.queue if cluster else None,
            instance_id=settings.instance_id,
            max_answer_chars=settings.max_answer_chars,
            queue_depth=settings.queue_max_depth,
            stop_relay=cluster,
            metrics=metrics,
        )
        bridge = Bridge(bot, pacer, service, database, settings, languages, metrics)
        await bridge.load()
        runner = LoginRunner(
            lambda: browser_login(settings, client), bridge.logins, coordination=cluster
        )
        isolation: BaseEventIsolation = (
            RedisEventIsolation(
                cluster.redis,
                key_builder=DefaultKeyBuilder(prefix=f"{cluster.namespace}isolation"),
                # Handlers only queue work, so a chat's lock is held for milliseconds; the
                # timeout only matters if an instance dies holding one.
                lock_kwargs={"timeout": 60, "blocking_timeout": 50},
            )
            if cluster is not None and settings.webhook_url is not None
            else DisabledEventIsolation()  # one process: its queues keep the order
        )
        dispatcher = Dispatcher(
            events_isolation=isolation,
            bridge=bridge,
            upstream=client,
            runner=runner,
            models=ModelCatalog(
                database,
                Endpoint(client, logins),
                default=settings.minimax_model,
                configured=settings.minimax_models,
            ),
            started_at=time.monotonic(),
        )
        access = AccessMiddleware(
            settings.allowed_user_ids, settings.allowed_chat_ids, settings.admin_ids
        )
        dispatcher.update.outer_middleware(LanguageMiddleware(languages))
        dispatcher.message.outer_middleware(access)
        dispatcher.callback_query.outer_middleware(access)
        usage = UsageLimits(
            per_user=settings.questions_per_minute,
            per_chat=settings.chat_requests_per_minute,
            redis_url=settings.redis_url.get_secret_value() if settings.redis_url else None,
            namespace=cluster.namespace if cluster else "hailuo-bridge:",
        )
        # Inner: only what a handler takes on counts (chatter the bot ignores does not).
        throttle = ThrottleMiddleware(usage, settings.admin_ids)
        dispatcher.message.middleware(throttle)
        dispatcher.callback_query.middleware(throttle)
        dispatcher.include_routers(*all_routers())
        dispatcher.startup.register(cls._on_startup)
        dispatcher.shutdown.register(cls._on_shutdown)
        app = cls(settings, database, pacer, bot, bridge, dispatcher, metrics, cluster)
        if cluster is not None:
            cluster.on_stop(service.stop_here)
            cluster.on_lease_lost(service.stop_all_here)
            cluster.on_login_request(app._login_request)
        if settings.web_port is not None:
            webhook = None
            if settings.webhook_url is not None:
                assert settings.webhook_secret is not None
                handler = SimpleRequestHandler(
                    dispatcher,
                    bot,
                    # Answer Telegram only once the update is queued (handlers return in
                    # milliseconds), so updates delivered in order are queued in order.
                    handle_in_background=False,
                    secret_token=settings.webhook_secret.get_secret_value(),
                    app=app,
                )
                webhook = (settings.webhook_path, handler.handle)
            app.web = WebServer(
                HealthCheck(database, logins), metrics, settings.instance_id, webhook
            )
        return app

    async def _login_request(self, action: str, chat_id: int) -> None:
        """Another instance got /login cancel or a screenshot request for our browser."""
        runner: LoginRunner = self.dispatcher["runner"]
        if not runner.busy:
            return
        if action == "cancel":
            runner.cancel()
        elif action == "screenshot" and chat_id:
            await send_screenshot(
                self.bot, chat_id, runner, self.bridge.languages.for_user(chat_id)
            )

    async def serve(self, *, handle_signals: bool = True) -> None:
        """Until stopped (SIGINT/SIGTERM or `stop()`): long polling, or the webhook."""
        me = await self._whoami()
        log.info("running as @%s", me.username)
        if self.web is not None:
            assert self.settings.web_port is not None
            await self.web.start(self.settings.web_host, self.settings.web_port)
        try:
            if self.settings.webhook_url is not None:
                await self._serve_webhook(handle_signals)
            else:
                await self.dispatcher.start_polling(
                    self.bot, handle_signals=handle_signals, app=self
                )
        finally:
            if self.web is not None:
                await finish_within(self.web.stop(), "stopping the web server")

    async def _serve_webhook(self, handle_signals: bool) -> None:
        assert self.settings.webhook_url is not None
        assert self.settings.webhook_secret is not None
        workflow = {"dispatcher": self.dispatcher, "bots": [self.bot], "app": self}
        workflow.update(self.dispatcher.workflow_data)
        loop = asyncio.get_running_loop()
        if handle_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, self._stopping.set)
        await self.dispatcher.emit_startup(bot=self.bot, **workflow)
        try:
            # Every instance sets the same webhook; none removes it when it stops.
            await self.bot.set_webhook(
                url=self.settings.webhook_url,
                secret_token=self.settings.webhook_secret.get_secret_value(),
                allowed_updates=self.dispatcher.resolve_used_update_types(),
            )
            log.info("webhook set; serving updates on %s", self.settings.webhook_path)
            await self._stopping.wait()
        finally:
            if handle_signals:
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(signum)
            # Bounded by the steps of _on_shutdown (each has its own deadline).
            await self.dispatcher.emit_shutdown(bot=self.bot, **workflow)

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
        if self.settings.webhook_url is not None:
            self._stopping.set()
        else:
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
        await self._sweeper.stop()
        await self._retention.stop()
        await finish_within(self.pacer.close(), "closing the pacer", deadline=30.0)
        await finish_within(self.bot.session.close(), "closing the Telegram session")
        if self.cluster is not None:
            await finish_within(self.cluster.close(), "leaving the cluster", deadline=60.0)
        await finish_within(self.database.close(), "closing the database")

    async def _sweep_abandoned(self) -> None:
        """Now and then, close answers that instances which are gone left unfinished."""
        assert self.cluster is not None
        while self._sweeper.running:
            try:
                await self.bridge.recover_abandoned(self.cluster.instance_running)
            except Exception as exc:  # Redis or the database briefly unavailable
                log.warning("could not look for abandoned answers: %s", type(exc).__name__)
            await self._sweeper.pause(ABANDONED_SWEEP_SECONDS)

    async def _purge_old_history(self) -> None:
        """HISTORY_RETENTION_DAYS: at start and every hour (idempotent on every instance)."""
        keep_days = self.settings.history_retention_days
        while self._retention.running:
            try:
                purged = await self.bridge.service.purge_history(keep_days)
                if purged:
                    log.info("deleted %d stored exchange(s) older than %d days", purged, keep_days)
            except Exception as exc:  # the database briefly unavailable
                log.warning("could not purge old history: %s", type(exc).__name__)
            await self._retention.pause(RETENTION_SWEEP_SECONDS)

    @staticmethod
    async def _on_startup(bot: Bot, bridge: Bridge, app: BotApp) -> None:
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
        await through_outage(bridge.recover_interrupted, "marking interrupted answers")
        if app.cluster is not None:
            app._sweeper.start(app._sweep_abandoned)
        app._retention.start(app._purge_old_history)

    @staticmethod
    async def _on_shutdown(
        bridge: Bridge, upstream: Upstream, runner: LoginRunner, app: BotApp
    ) -> None:
        if app.web is not None:
            app.web.draining = True  # the load balancer stops sending us updates
        await runner.cancel_and_wait()
        await bridge.shutdown()
        await app._sweeper.stop()
        await app._retention.stop()
        await finish_within(upstream.close(), "closing the upstream client")
        if bridge.service.fallback is not None:
            await finish_within(bridge.service.fallback.client.close(), "closing the fallback")


async def _when_reachable(step: Callable[[], Awaitable[T]]) -> T:
    """A start-up step that needs the database: while it cannot be reached (a restart during
    an outage), try again with growing pauses for up to DATABASE_WAIT seconds, saying so."""
    delay, waited = 1.0, 0.0
    while True:
        try:
            return await step()
        except Exception as exc:
            if not transient(exc):
                raise
            if waited >= DATABASE_WAIT:
                raise ConfigError(
                    f"cannot reach the database ({type(exc).__name__}); is it running?"
                ) from None
            log.warning(
                "cannot reach the database (%s); retrying in %.0f s", type(exc).__name__, delay
            )
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 15.0)


async def run(settings: Settings) -> int:
    app = await BotApp.create(settings)
    try:
        await app.serve()
    finally:
        await app.close()
        await _end_leftovers()
    return 0


async def _end_leftovers() -> None:
    """asyncio.run waits, without a deadline, for every task still alive: one that swallows
    its cancellation would keep the process from exiting. Stop them within a deadline, and if
    one survives even that, leave at once (all state is saved by now)."""
    current = asyncio.current_task()
    leftovers = [task for task in asyncio.all_tasks() if task is not current]
    if leftovers and not await stop_tasks(leftovers, "tasks left at exit"):
        logging.shutdown()
        os._exit(1)
