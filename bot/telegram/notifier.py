"""Tells admins, in their private chats with the bot, what needs their attention."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError

from bot.services.answering import Note
from bot.telegram import texts

log = logging.getLogger(__name__)


class TelegramAdminNotifier:
    def __init__(self, bot: Bot, admin_ids: Iterable[int]) -> None:
        self._bot = bot
        self._admins = tuple(admin_ids)

    async def login_problem(self, note: Note, fingerprint: str | None) -> None:
        if note is Note.NO_LOGIN:
            text = texts.ADMIN_NO_LOGIN
        else:
            text = texts.ADMIN_LOGIN_REJECTED.format(fingerprint=fingerprint or "unknown")
        if not self._admins:
            log.warning("no ADMIN_IDS to tell: %s", text)
        for admin in self._admins:
            try:
                await self._bot.send_message(chat_id=admin, text=text)
            except TelegramAPIError as exc:
                log.warning("could not notify admin %s: %s", admin, exc)
