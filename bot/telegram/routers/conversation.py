"""/new, /title, /stop and /context: managing the conversation of this chat or topic."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.storage.models import ContextMode
from bot.telegram import texts
from bot.telegram.bridge import Bridge, topic_of

router = Router(name="conversation")


@router.message(Command("new"))
async def new_conversation(message: Message, bridge: Bridge) -> None:
    key = await bridge.key_for(message)
    reset = await bridge.conversations.reset(key)
    await bridge.reply(message, texts.NEW_CONVERSATION if reset else texts.NOTHING_TO_RESET)


@router.message(Command("title"))
async def title(message: Message, bridge: Bridge) -> None:
    record = await bridge.conversations.get(await bridge.key_for(message))
    if record is None or not record.title:
        await bridge.reply(message, texts.NO_TITLE)
    else:
        await bridge.reply(message, texts.TITLE.format(title=record.title))


@router.message(Command("stop"))
async def stop(message: Message, bridge: Bridge) -> None:
    user_id = message.from_user.id if message.from_user else None
    running = bridge.service.find(message.chat.id, topic_of(message) or 0, user_id)
    for answer in running:
        answer.stop()
    if not running:
        await bridge.reply(message, texts.NOTHING_TO_STOP)


@router.message(Command("context"), F.chat.type.in_({"group", "supergroup"}))
async def context_mode(message: Message, command: CommandObject, bridge: Bridge) -> None:
    current = (await bridge.chat_settings.get(message.chat.id)).context_mode
    wanted = (command.args or "").strip().lower()
    if wanted not in {mode.value for mode in ContextMode}:
        await bridge.reply(message, texts.CONTEXT_USAGE.format(mode=current.value))
        return
    anonymous_admin = message.sender_chat is not None and message.sender_chat.id == message.chat.id
    user_id = message.from_user.id if message.from_user else 0
    if not anonymous_admin and not await bridge.is_chat_admin(message.chat.id, user_id):
        await bridge.reply(message, texts.CONTEXT_ADMINS_ONLY)
        return
    await bridge.chat_settings.set_context_mode(message.chat.id, ContextMode(wanted))
    await bridge.reply(message, texts.CONTEXT_SET.format(mode=wanted))


@router.message(Command("context"))
async def context_outside_groups(message: Message, bridge: Bridge) -> None:
    await bridge.reply(message, texts.CONTEXT_GROUPS_ONLY)
