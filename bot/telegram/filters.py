"""Which group messages are addressed to the bot, and what they ask."""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.filters import BaseFilter
from aiogram.types import CallbackQuery, Message


class AddressedToBot(BaseFilter):
    """A reply to one of the bot's messages, or a message mentioning @botname.

    Passes the question (the text without the mention) to the handler as `question`."""

    async def __call__(self, message: Message, bot: Bot) -> bool | dict[str, Any]:
        text = message.text or message.caption
        if not text:
            return False
        me = await bot.me()
        replied = message.reply_to_message
        if (
            replied is not None
            and replied.from_user is not None
            and replied.from_user.id == me.id
            and replied.forum_topic_created is None
        ):
            return {"question": _without_mention(message, text, me.username)}
        if me.username and _mentions(message, me.username):
            return {"question": _without_mention(message, text, me.username)}
        return False


def _mention_entities(message: Message, username: str) -> list[tuple[int, int]]:
    """(start, end) in Python characters of each @username mention of the bot."""
    text = message.text or message.caption or ""
    entities = message.entities if message.text else message.caption_entities
    encoded = text.encode("utf-16-le")
    spans: list[tuple[int, int]] = []
    for entity in entities or ():
        if entity.type != "mention":
            continue
        if entity.extract_from(text).lower() != f"@{username.lower()}":
            continue
        start = len(encoded[: entity.offset * 2].decode("utf-16-le"))
        end = len(encoded[: (entity.offset + entity.length) * 2].decode("utf-16-le"))
        spans.append((start, end))
    return spans


def _mentions(message: Message, username: str) -> bool:
    return bool(_mention_entities(message, username))


def _without_mention(message: Message, text: str, username: str | None) -> str:
    if not username:
        return text.strip()
    for start, end in sorted(_mention_entities(message, username), reverse=True):
        text = f"{text[:start].rstrip(' ')} {text[end:].lstrip(' ')}"
    return text.strip()


# aiogram runs plain callables (magic F filters included) in a worker thread. These small async
# filters avoid that hop on every update and keep each chat's updates in arrival order.


class ChatTypes(BaseFilter):
    def __init__(self, *types: str) -> None:
        self.types = frozenset(types)

    async def __call__(self, message: Message) -> bool:
        return message.chat.type in self.types


class HasField(BaseFilter):
    """The message carries `field` (e.g. `migrate_to_chat_id`)."""

    def __init__(self, field: str) -> None:
        self.field = field

    async def __call__(self, message: Message) -> bool:
        return getattr(message, self.field, None) is not None


class HasText(BaseFilter):
    """Text or a caption: captions count as questions too."""

    async def __call__(self, message: Message) -> bool:
        return bool(message.text or message.caption)


class SlashCommand(BaseFilter):
    async def __call__(self, message: Message) -> bool:
        return bool(message.text and message.text.startswith("/"))


class CallbackPrefix(BaseFilter):
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    async def __call__(self, query: CallbackQuery) -> bool:
        return bool(query.data and query.data.startswith(self.prefix))
