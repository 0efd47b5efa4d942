"""/new, /title, /stop and /context: managing the conversation of this chat or topic."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.i18n import Translator
from bot.storage.models import ContextMode
from bot.telegram.bridge import Bridge, topic_of
from bot.telegram.filters import ChatTypes


async def new_conversation(message: Message, bridge: Bridge, t: Translator) -> None:
    """A shared group conversation belongs to the group: only its admins start it afresh."""
    if await bridge.shared_in_group(message) and not await bridge.sent_by_admin(message):
        await bridge.reply(message, t("new_admins_only"))
        return
    await bridge.new_conversation(message, t)


async def title(message: Message, bridge: Bridge, t: Translator) -> None:
    await bridge.show_title(message, t)


async def stop(message: Message, bridge: Bridge, t: Translator) -> None:
    """The button's rule: the asker stops their own answers; a group admin stops any."""
    everyone = message.chat.type == "private" or await bridge.sent_by_admin(message)
    user_id = None if everyone else (message.from_user.id if message.from_user else 0)
    stopped = await bridge.service.stop_in(message.chat.id, topic_of(message) or 0, user_id)
    if not stopped:
        await bridge.reply(message, t("nothing_to_stop"))


async def context_mode(
    message: Message, command: CommandObject, bridge: Bridge, t: Translator
) -> None:
    current = bridge.context_mode(message.chat.id)
    wanted = (command.args or "").strip().lower()
    if wanted not in {mode.value for mode in ContextMode}:
        await bridge.reply(message, t("context_usage", mode=current.value))
        return
    if not await bridge.sent_by_admin(message):
        await bridge.reply(message, t("context_admins_only"))
        return
    await bridge.set_context_mode(message.chat.id, ContextMode(wanted))
    await bridge.reply(message, t("context_set", mode=wanted))


async def context_outside_groups(message: Message, bridge: Bridge, t: Translator) -> None:
    await bridge.reply(message, t("context_groups_only"))


def create_router() -> Router:
    router = Router(name="conversation")
    router.message.register(new_conversation, Command("new"))
    router.message.register(title, Command("title"))
    router.message.register(stop, Command("stop"))
    router.message.register(context_mode, Command("context"), ChatTypes("group", "supergroup"))
    router.message.register(context_outside_groups, Command("context"))
    return router
