"""Tells admins, in their private chats with the bot and in their language, what needs them."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError

from bot.services.answering import Note
from bot.services.upstreams import FailoverReason
from bot.telegram.languages import Languages
from bot.upstream import display_name

log = logging.getLogger(__name__)


class TelegramAdminNotifier:
    def __init__(self, bot: Bot, admin_ids: Iterable[int], languages: Languages) -> None:
        self._bot = bot
        self._admins = tuple(admin_ids)
        self._languages = languages

    async def login_problem(self, note: Note, fingerprint: str | None) -> None:
        if note is Note.NO_LOGIN:
            await self._tell("admin_no_login")
        elif note is Note.KEY_REJECTED:
            await self._tell("admin_key_rejected", fingerprint=fingerprint or "?")
        else:
            await self._tell("admin_login_rejected", fingerprint=fingerprint or "?")

    async def failover(self, primary: str, fallback: str, reason: FailoverReason) -> None:
        key = "admin_failover_login" if reason is FailoverReason.LOGIN else "admin_failover_outage"
        await self._tell(key, primary=display_name(primary), fallback=display_name(fallback))

    async def _tell(self, key: str, **values: str) -> None:
        if not self._admins:
            log.warning("the upstream needs attention (%s), but ADMIN_IDS is empty", key)
        for admin in self._admins:
            text = self._languages.for_user(admin)(key, **values)
            try:
                await self._bot.send_message(chat_id=admin, text=text)
            except TelegramAPIError as exc:
                log.warning("could not notify admin %s: %s", admin, exc)
