"""Questions: every text in a private chat; /ask, replies and mentions in groups."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.telegram import texts
from bot.telegram.bridge import Bridge
from bot.telegram.filters import AddressedToBot

router = Router(name="questions")

private = Router(name="questions.private")
private.message.filter(F.chat.type == "private")
groups = Router(name="questions.groups")
groups.message.filter(F.chat.type.in_({"group", "supergroup"}))
router.include_routers(private, groups)


@router.message(Command("ask"))
async def ask_command(message: Message, command: CommandObject, bridge: Bridge) -> None:
    if not (command.args or "").strip():
        await bridge.reply(message, texts.ASK_USAGE)
        return
    await bridge.ask(message, command.args or "")


@private.message(F.text.startswith("/"))
async def unknown_command(message: Message, bridge: Bridge) -> None:
    await bridge.reply(message, texts.UNKNOWN_COMMAND)


@private.message(F.text | F.caption)
async def private_question(message: Message, bridge: Bridge) -> None:
    await bridge.ask(message, message.text or message.caption or "")


@private.message()
async def private_non_text(message: Message, bridge: Bridge) -> None:
    await bridge.reply(message, texts.TEXT_ONLY)


@groups.message(AddressedToBot())
async def group_question(message: Message, question: str, bridge: Bridge) -> None:
    if not question:
        await bridge.reply(message, texts.ASK_USAGE)
        return
    await bridge.ask(message, question)
