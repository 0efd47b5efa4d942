"""Questions: every text in a private chat; /ask, replies and mentions in groups."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.i18n import Translator
from bot.telegram.bridge import Bridge
from bot.telegram.filters import AddressedToBot, ChatTypes, HasText, SlashCommand


async def ask_command(
    message: Message, command: CommandObject, bridge: Bridge, t: Translator
) -> None:
    if not (command.args or "").strip():
        await bridge.reply(message, t("ask_usage"))
        return
    await bridge.ask(message, command.args or "", t)


async def unknown_command(message: Message, bridge: Bridge, t: Translator) -> None:
    await bridge.reply(message, t("unknown_command"))


async def private_question(message: Message, bridge: Bridge, t: Translator) -> None:
    await bridge.ask(message, message.text or message.caption or "", t)


async def private_non_text(message: Message, bridge: Bridge, t: Translator) -> None:
    await bridge.reply(message, t("text_only"))


async def group_question(message: Message, question: str, bridge: Bridge, t: Translator) -> None:
    if not question:
        await bridge.reply(message, t("ask_usage"))
        return
    await bridge.ask(message, question, t)


def create_router() -> Router:
    router = Router(name="questions")
    router.message.register(ask_command, Command("ask"))

    private = Router(name="questions.private")
    private.message.filter(ChatTypes("private"))
    private.message.register(unknown_command, SlashCommand())
    private.message.register(private_question, HasText())
    private.message.register(private_non_text)

    groups = Router(name="questions.groups")
    groups.message.filter(ChatTypes("group", "supergroup"))
    groups.message.register(group_question, AddressedToBot())

    router.include_routers(private, groups)
    return router
