"""The Bot object: API server, default properties, and every chat-writing call paced."""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import (
    EditMessageReplyMarkup,
    EditMessageText,
    GetUpdates,
    SendMessage,
    SendMessageDraft,
    TelegramMethod,
)
from aiogram.methods.base import Response, TelegramType

from bot.telegram.pacer import Pacer, Priority, held_permit

log = logging.getLogger(__name__)

PACED_METHODS = frozenset({SendMessage, EditMessageText, EditMessageReplyMarkup, SendMessageDraft})
MAX_ATTEMPTS = 4


class PacingMiddleware(BaseRequestMiddleware):
    """Routes chat-writing calls through the pacer and honours 429 retry_after per chat.

    Calls made under `pacer.permit(...)` (streams) pass straight through and get the 429 back, so
    the stream can send its newest text instead of a stale one. Other calls (notices, replies to
    commands) wait for a permit and are retried after the pause Telegram asked for."""

    def __init__(self, pacer: Pacer) -> None:
        self.pacer = pacer

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        chat_id = getattr(method, "chat_id", None)
        if type(method) not in PACED_METHODS or not isinstance(chat_id, int):
            return await make_request(bot, method)
        if held_permit.get() == chat_id:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                self.pacer.penalize(chat_id, exc.retry_after)
                raise
        for attempt in range(1, MAX_ATTEMPTS + 1):
            async with self.pacer.permit(chat_id, Priority.URGENT):
                try:
                    return await make_request(bot, method)
                except TelegramRetryAfter as exc:
                    self.pacer.penalize(chat_id, exc.retry_after)
                    if attempt == MAX_ATTEMPTS:
                        raise
        raise AssertionError("unreachable")


class CallMetrics(Protocol):
    def telegram_call(self, method: str, result: str, seconds: float | None) -> None: ...


class CallMetricsMiddleware(BaseRequestMiddleware):
    """Counts and times every request that reaches the Bot API (each retry too); long polls
    are counted but not timed, their duration is the poll timeout."""

    def __init__(self, metrics: CallMetrics) -> None:
        self.metrics = metrics

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        name = method.__api_method__
        started = time.monotonic()
        result = "error"  # unless it returns or asks us to wait
        try:
            response = await make_request(bot, method)
            result = "ok"
            return response
        except TelegramRetryAfter:
            result = "retry_after"
            raise
        finally:
            seconds = None if isinstance(method, GetUpdates) else time.monotonic() - started
            self.metrics.telegram_call(name, result, seconds)


def create_bot(
    token: str,
    pacer: Pacer,
    api_url: str | None = None,
    metrics: CallMetrics | None = None,
    **session: Any,
) -> Bot:
    api = TelegramAPIServer.from_base(api_url) if api_url else None
    aiohttp_session = AiohttpSession(api=api, **session) if api else AiohttpSession(**session)
    aiohttp_session.middleware(PacingMiddleware(pacer))
    if metrics is not None:
        aiohttp_session.middleware(CallMetricsMiddleware(metrics))
    return Bot(
        token=token,
        session=aiohttp_session,
        default=DefaultBotProperties(link_preview_is_disabled=True),
    )
