"""Who speaks which language: /lang choices (stored), group languages, Telegram's language_code.

Everything is cached in memory and answered synchronously, so choosing the language never makes
an update wait (and never lets a later update of the same chat overtake it).
"""

from __future__ import annotations

from collections import OrderedDict

from aiogram.types import Chat, User

from bot.i18n import Translator, language_for, translator
from bot.storage.chat_settings import ChatSettings, ChatSettingsStore, UserSettingsStore
from bot.storage.database import Database

MAX_SEEN = 10_000


class Languages:
    def __init__(self, database: Database) -> None:
        self._chats_store = ChatSettingsStore(database)
        self._users_store = UserSettingsStore(database)
        self._chats: dict[int, str] = {}  # set by a group admin
        self._users: dict[int, str] = {}  # chosen with /lang
        # Telegram's language_code, as last seen; bounded: every stranger would add one.
        self._seen: OrderedDict[int, str] = OrderedDict()

    async def load(self, chats: list[ChatSettings]) -> None:
        """Start from the stored choices (the chats' settings are read once, by the caller)."""
        self._chats = {item.chat_id: item.language for item in chats if item.language}
        self._users = await self._users_store.languages()

    def for_user(self, user_id: int) -> Translator:
        """A user's language outside any chat context (e.g. a notification to an admin)."""
        chosen = self._users.get(user_id)
        return translator(chosen or language_for(self._seen.get(user_id)))

    def for_event(self, user: User | None, chat: Chat | None) -> Translator:
        if user is not None and user.language_code:
            self._seen[user.id] = user.language_code
            self._seen.move_to_end(user.id)
            if len(self._seen) > MAX_SEEN:
                self._seen.popitem(last=False)
        if chat is not None and chat.type != "private" and chat.id in self._chats:
            return translator(self._chats[chat.id])
        if user is not None:
            return self.for_user(user.id)
        return translator(self._chats.get(chat.id, "en") if chat else "en")

    def for_ids(self, user_id: int | None, chat_id: int) -> Translator:
        """For messages sent later about an update (e.g. after a restart)."""
        if chat_id in self._chats:
            return translator(self._chats[chat_id])
        return self.for_user(user_id) if user_id else translator("en")

    def chat_language(self, chat_id: int) -> str | None:
        return self._chats.get(chat_id)

    async def set_user(self, user_id: int, language: str | None) -> None:
        await self._users_store.set_language(user_id, language)
        if language:
            self._users[user_id] = language
        else:
            self._users.pop(user_id, None)

    async def set_chat(self, chat_id: int, language: str | None) -> None:
        await self._chats_store.set_language(chat_id, language)
        if language:
            self._chats[chat_id] = language
        else:
            self._chats.pop(chat_id, None)

    def moved(self, old_chat_id: int, new_chat_id: int) -> None:
        if old_chat_id in self._chats:
            self._chats.setdefault(new_chat_id, self._chats.pop(old_chat_id))
