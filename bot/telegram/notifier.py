"""Tells admins, in their private chats with the bot and in their language, what needs them."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError

from bot.services.answering import Note
from bot.telegram.languages import Languages

log = logging.getLogger(__name__)


class TelegramAdminNotifier:
    def __init__(self, bot: Bot, admin_ids: Iterable[int], languages: Languages) -> None:
        self._bot = bot
        self._admins = tuple(admin_ids)
        self._languages = languages

    async def login_problem(self, note: Note, fingerprint: str | None) -> None:
        if not self._admins:
            log.warning("the Hailuo login needs attention, but ADMIN_IDS is empty")
        for admin in self._admins:
            t = self._languages.for_user(admin)
            if note is Note.NO_LOGIN:
                text = t("admin_no_login")
            else:
                text = t("admin_login_rejected", fingerprint=fingerprint or "?")
            try:
                await self._bot.send_message(chat_id=admin, text=text)
            except TelegramAPIError as exc:
                log.warning("could not notify admin %s: %s", admin, exc)
