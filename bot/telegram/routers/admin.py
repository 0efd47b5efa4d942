"""/login, /status and /logout: keeping the bot logged in to Hailuo."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import BaseFilter, Command, CommandObject
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)

from bot import __version__
from bot.hailuo.login import LoginDone, LoginError, LoginEvent, LoginLink, LoginStage
from bot.services.login_runner import LoginBusy, LoginCancelled, LoginRunner
from bot.storage.models import AnswerStatus
from bot.telegram import texts
from bot.telegram.bridge import Bridge
from bot.telegram.filters import CallbackPrefix

log = logging.getLogger(__name__)


class IsAdmin(BaseFilter):
    """The sender is in ADMIN_IDS (checked by user id, never by name)."""

    async def __call__(self, event: Message | CallbackQuery, bridge: Bridge) -> bool:
        user = event.from_user
        return user is not None and user.id in bridge.settings.admin_ids


def _login_buttons() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=texts.LOGIN_SCREENSHOT_BUTTON, callback_data="login:shot"
                ),
                InlineKeyboardButton(text=texts.LOGIN_CANCEL_BUTTON, callback_data="login:cancel"),
            ]
        ]
    )


async def login(
    message: Message, command: CommandObject, bridge: Bridge, runner: LoginRunner, bot: Bot
) -> None:
    action = (command.args or "").strip().lower()
    if action == "cancel":
        await bridge.reply(
            message, texts.LOGIN_CANCELLED if runner.cancel() else texts.LOGIN_NOT_RUNNING
        )
        return
    if action == "screenshot":
        await send_screenshot(bot, message.chat.id, runner)
        return
    if runner.busy:
        await bridge.reply(message, texts.LOGIN_BUSY)
        return
    status = await bot.send_message(chat_id=message.chat.id, text=texts.LOGIN_STARTING)
    site = bridge.settings.hailuo_base_url
    link = ""

    async def show(text: str, buttons: bool = False) -> None:
        try:
            await bot.edit_message_text(
                chat_id=status.chat.id,
                message_id=status.message_id,
                text=text,
                reply_markup=_login_buttons() if buttons else None,
            )
        except TelegramAPIError as exc:
            log.debug("login status not updated: %s", exc)

    async def progress(event: LoginEvent) -> None:
        nonlocal link
        if isinstance(event, LoginLink):
            link = texts.LOGIN_LINK.format(url=event.url) + "\n"
            await show(link.strip())
        elif isinstance(event, LoginStage) and event.stage != "starting":
            left = int(event.seconds_left)
            text = (
                texts.LOGIN_OPENED.format(site=site)
                if event.stage == "opened"
                else texts.LOGIN_WAITING.format(site=site, minutes=left // 60, seconds=left % 60)
            )
            await show(link + text, buttons=True)
        elif isinstance(event, LoginDone):
            await show(texts.LOGIN_DONE.format(fingerprint=event.auth.fingerprint))

    user = message.from_user
    try:
        record = await runner.run(
            progress, obtained_by=user.id if user else None, source="telegram"
        )
    except LoginBusy:
        await show(texts.LOGIN_BUSY)
        return
    except LoginError as exc:
        await show(texts.LOGIN_FAILED.format(reason=exc))
        return
    except LoginCancelled:
        await show(texts.LOGIN_CANCELLED)
        return
    announcement = texts.LOGIN_ANNOUNCE.format(
        name=user.full_name if user else "an admin", fingerprint=record.fingerprint
    )
    for admin in bridge.settings.admin_ids:
        if admin != message.chat.id:
            try:
                await bot.send_message(chat_id=admin, text=announcement)
            except TelegramAPIError as exc:
                log.warning("could not tell admin %s about the new login: %s", admin, exc)


async def send_screenshot(bot: Bot, chat_id: int, runner: LoginRunner) -> None:
    if not runner.busy:
        await bot.send_message(chat_id=chat_id, text=texts.LOGIN_NOT_RUNNING)
        return
    picture = await runner.screenshot()
    if picture is None:
        await bot.send_message(chat_id=chat_id, text=texts.LOGIN_NO_PAGE)
        return
    await bot.send_photo(chat_id=chat_id, photo=BufferedInputFile(picture, "login.png"))


async def login_button(query: CallbackQuery, runner: LoginRunner, bot: Bot) -> None:
    await query.answer()
    if query.data == "login:cancel":
        runner.cancel()
    elif query.message is not None:
        await send_screenshot(bot, query.message.chat.id, runner)


async def status(message: Message, bridge: Bridge, started_at: float) -> None:
    service = bridge.service
    login = await bridge.logins.current()
    now = datetime.now(UTC)
    if login is None:
        login_line = texts.STATUS_NO_LOGIN
    else:
        record = login.record
        health = " — REJECTED, send /login" if record.invalid_at else ""
        login_line = texts.STATUS_LOGIN.format(
            fingerprint=record.fingerprint,
            source=record.source or "unknown",
            age=_duration((now - record.obtained_at).total_seconds()),
            health=health,
        )
    last_success = service.stats.last_success_at
    if last_success is None and login is not None and login.record.last_success_at:
        last_success = login.record.last_success_at.timestamp()
    counts = await bridge.answers.counts_by_status()
    answers = ", ".join(
        f"{status.value} {counts[status]}" for status in AnswerStatus if counts[status]
    )
    await bridge.reply(
        message,
        texts.STATUS_ADMIN.format(
            version=__version__,
            uptime=_duration(time.monotonic() - started_at),
            login=login_line,
            last_success=(
                _duration(time.time() - last_success) + " ago"
                if last_success
                else texts.STATUS_NEVER
            ),
            last_error=service.stats.last_upstream_error or texts.STATUS_NONE,
            in_flight=len(service.running),
            conversations=await bridge.conversations.count(),
            answers=answers or texts.STATUS_NONE,
            database=bridge.engine_name,
        ),
    )


async def status_for_users(message: Message, bridge: Bridge) -> None:
    login = await bridge.logins.current()
    working = login is not None and login.record.invalid_at is None
    await bridge.reply(message, texts.STATUS_USER_OK if working else texts.STATUS_USER_NEEDS_LOGIN)


async def logout(message: Message, bridge: Bridge) -> None:
    removed = await bridge.logins.forget()
    await bridge.reply(message, texts.LOGOUT_DONE if removed else texts.LOGOUT_NOTHING)


async def admins_only(message: Message, bridge: Bridge) -> None:
    await bridge.reply(message, texts.ADMINS_ONLY)


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {seconds}s"
    return f"{seconds}s"


def create_router() -> Router:
    router = Router(name="admin")
    admins = Router(name="admin.only")
    admins.message.filter(IsAdmin())
    admins.callback_query.filter(IsAdmin())
    admins.message.register(login, Command("login"))
    admins.message.register(status, Command("status"))
    admins.message.register(logout, Command("logout"))
    admins.callback_query.register(login_button, CallbackPrefix("login:"))
    # Everyone else: a clear refusal, and nothing starts.
    others = Router(name="admin.others")
    others.message.register(status_for_users, Command("status"))
    others.message.register(admins_only, Command("login", "logout"))
    router.include_routers(admins, others)
    return router
