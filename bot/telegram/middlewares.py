"""Middlewares: each update's language, access control, and the usage limit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, TelegramObject

from bot.i18n import Translator
from bot.services.usage import UsageLimits
from bot.telegram.languages import Languages


class LanguageMiddleware(BaseMiddleware):
    """Gives handlers `t`, the translator for whoever the update is from and where."""

    def __init__(self, languages: Languages) -> None:
        self._languages = languages

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        data["t"] = self._languages.for_event(data.get("event_from_user"), data.get("event_chat"))
        return await handler(event, data)


class AccessMiddleware(BaseMiddleware):
    """With ALLOWED_USER_IDS / ALLOWED_CHAT_IDS set, everyone else is turned away politely."""

    def __init__(self, users: frozenset[int], chats: frozenset[int], admins: frozenset[int]):
        self._users = users | admins
        self._chats = chats
        self._open = not users and not chats

    def allowed(self, user_id: int | None, chat_id: int | None) -> bool:
        return (
            self._open
            or (user_id is not None and user_id in self._users)
            or (chat_id is not None and chat_id in self._chats)
        )

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user = data.get("event_from_user")
        chat = data.get("event_chat")
        if self.allowed(user.id if user else None, chat.id if chat else None):
            return await handler(event, data)
        t: Translator = data["t"]
        refusal = t("not_allowed")  # in groups, strangers are simply ignored
        if isinstance(event, CallbackQuery):
            await event.answer(refusal)
        if isinstance(event, Message) and event.chat.type == "private":
            await event.answer(refusal)
        return None


def _exempt(event: TelegramObject) -> bool:
    """Stopping an answer is never refused, nor is what Telegram itself reports (a group
    becoming a supergroup): only what a person asks for counts."""
    if isinstance(event, CallbackQuery):
        return (event.data or "").startswith("stop:")
    if isinstance(event, Message):
        text = event.text or event.caption
        return text is None or text.split(maxsplit=1)[0].split("@")[0] == "/stop"
    return False


class ThrottleMiddleware(BaseMiddleware):
    """One limit for everything a person makes the bot do (an inner middleware: only updates a
    handler takes on count). Anonymous admins and channels all post as one Telegram user, so
    they are counted by the chat they post as. Admins are not limited."""

    def __init__(self, usage: UsageLimits, admins: frozenset[int]) -> None:
        self._usage = usage
        self._admins = admins

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        message = event if isinstance(event, Message) else None
        if isinstance(event, CallbackQuery) and isinstance(event.message, Message):
            message = event.message
        user = data.get("event_from_user")
        if message is None or user is None or user.id in self._admins or _exempt(event):
            return await handler(event, data)
        sender = event.sender_chat if isinstance(event, Message) else None
        user_key = f"chat{sender.id}" if sender is not None else str(user.id)
        chat_key = None if message.chat.type == "private" else str(message.chat.id)
        verdict = await self._usage.take(user_key, chat_key)
        if verdict.allowed:
            return await handler(event, data)
        t: Translator = data["t"]
        if isinstance(event, CallbackQuery):
            await event.answer(t("rate_limited") if verdict.tell else None)
        elif verdict.tell:
            await data["bridge"].reply(event, t("rate_limited"))
        return None
