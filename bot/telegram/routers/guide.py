"""/start and /help."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from bot.telegram import texts
from bot.telegram.bridge import Bridge


async def start(message: Message, bridge: Bridge) -> None:
    await bridge.reply(message, texts.START)


async def help_(message: Message, bridge: Bridge, bot: Bot) -> None:
    me = await bot.me()
    await bridge.reply(message, texts.HELP.format(mention=f"@{me.username}"))


def create_router() -> Router:
    router = Router(name="guide")
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    return router
