"""/start, /help and /lang."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import Message

from bot.i18n import LANGUAGES, Translator, translator
from bot.telegram.bridge import Bridge


async def start(message: Message, bridge: Bridge, t: Translator) -> None:
    await bridge.reply(message, t("start"))


async def help_(message: Message, bridge: Bridge, bot: Bot, t: Translator) -> None:
    me = await bot.me()
    await bridge.reply(message, t("help", mention=f"@{me.username}"))


async def lang(message: Message, command: CommandObject, bridge: Bridge, t: Translator) -> None:
    """/lang en|ru|auto: for yourself in private chats, for the group (admins) in groups."""
    wanted = (command.args or "").strip().lower()
    user = message.from_user
    if wanted not in (*LANGUAGES, "auto") or user is None:
        await bridge.reply(message, t("lang_usage", language=t("lang_name")))
        return
    language = None if wanted == "auto" else wanted
    if message.chat.type == "private":
        await bridge.languages.set_user(user.id, language)
    else:
        if not await bridge.is_chat_admin(message.chat.id, user.id):
            await bridge.reply(message, t("context_admins_only"))
            return
        await bridge.languages.set_chat(message.chat.id, language)
    now = translator(language) if language else bridge.languages.for_event(user, message.chat)
    await bridge.reply(message, now("lang_set") if language else now("lang_auto"))


def create_router() -> Router:
    router = Router(name="guide")
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    router.message.register(lang, Command("lang"))
    return router
