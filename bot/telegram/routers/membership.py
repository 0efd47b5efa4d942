"""Chat lifecycle: a group that becomes a supergroup keeps its conversations."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import Message

from bot.telegram.bridge import Bridge
from bot.telegram.filters import HasField


async def migrated_to(message: Message, bridge: Bridge) -> None:
    assert message.migrate_to_chat_id is not None
    await bridge.migrate(message.chat.id, message.migrate_to_chat_id)


async def migrated_from(message: Message, bridge: Bridge) -> None:
    assert message.migrate_from_chat_id is not None
    await bridge.migrate(message.migrate_from_chat_id, message.chat.id)


def create_router() -> Router:
    router = Router(name="membership")
    router.message.register(migrated_to, HasField("migrate_to_chat_id"))
    router.message.register(migrated_from, HasField("migrate_from_chat_id"))
    return router
