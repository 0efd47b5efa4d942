"""/login, /status and /logout: keeping the bot logged in to its upstream."""

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
from bot.i18n import Translator
from bot.services.factories import login_options
from bot.services.login_runner import LoginBusy, LoginCancelled, LoginRunner
from bot.services.models import ModelCatalog
from bot.storage.models import AnswerStatus
from bot.telegram.bridge import Bridge
from bot.telegram.filters import CallbackPrefix, ChatTypes
from bot.upstream import display_name
from bot.upstream.browser import LoginDone, LoginError, LoginEvent, LoginLink, LoginStage

log = logging.getLogger(__name__)


class IsAdmin(BaseFilter):
    """The sender is in ADMIN_IDS (checked by user id, never by name)."""

    async def __call__(self, event: Message | CallbackQuery, bridge: Bridge) -> bool:
        user = event.from_user
        return user is not None and user.id in bridge.settings.admin_ids


def _login_buttons(t: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text=t("login_screenshot_button"), callback_data="login:shot"),
                InlineKeyboardButton(text=t("login_cancel_button"), callback_data="login:cancel"),
            ]
        ]
    )


async def login(
    message: Message,
    command: CommandObject,
    bridge: Bridge,
    runner: LoginRunner,
    bot: Bot,
    t: Translator,
) -> None:
    action = (command.args or "").strip().lower()
    if bridge.settings.upstream == "minimax-api":
        await bridge.reply(message, t("login_not_needed"))
        return
    if action == "cancel":
        cancelled = await runner.cancel_anywhere()
        await bridge.reply(message, t("login_cancelled") if cancelled else t("login_not_running"))
        return
    if action == "screenshot":
        await send_screenshot(bot, message.chat.id, runner, t)
        return
    if runner.busy:
        await bridge.reply(message, t("login_busy"))
        return
    status = await bot.send_message(chat_id=message.chat.id, text=t("login_starting"))
    # Minutes of waiting for a person: off the handler, so this chat's updates keep flowing
    # (the cancel button among them).
    bridge.spawn(_login_flow(message, status, bridge, runner, bot, t))


async def _login_flow(
    message: Message, status: Message, bridge: Bridge, runner: LoginRunner, bot: Bot, t: Translator
) -> None:
    site = login_options(bridge.settings).base_url
    link = ""

    async def show(text: str, buttons: bool = False) -> None:
        try:
            await bot.edit_message_text(
                chat_id=status.chat.id,
                message_id=status.message_id,
                text=text,
                reply_markup=_login_buttons(t) if buttons else None,
            )
        except TelegramAPIError as exc:
            log.debug("login status not updated: %s", exc)

    async def progress(event: LoginEvent) -> None:
        nonlocal link
        if isinstance(event, LoginLink):
            link = t("login_link", url=event.url) + "\n"
            await show(link.strip())
        elif isinstance(event, LoginStage) and event.stage != "starting":
            left = int(event.seconds_left)
            text = (
                t("login_opened", site=site)
                if event.stage == "opened"
                else t("login_waiting", site=site, minutes=left // 60, seconds=left % 60)
            )
            await show(link + text, buttons=True)
        elif isinstance(event, LoginDone):
            await show(t("login_done", fingerprint=event.auth.fingerprint))

    user = message.from_user
    try:
        record = await runner.run(
            progress, obtained_by=user.id if user else None, source="telegram"
        )
    except LoginBusy:
        await show(t("login_busy"))
        return
    except LoginError as exc:
        await show(t("login_failed", reason=exc))
        return
    except LoginCancelled:
        await show(t("login_cancelled"))
        return
    name = user.full_name if user else "?"
    for admin in bridge.settings.admin_ids:
        if admin != message.chat.id:
            announcement = bridge.languages.for_user(admin)(
                "login_announce", name=name, fingerprint=record.fingerprint
            )
            try:
                await bot.send_message(chat_id=admin, text=announcement)
            except TelegramAPIError as exc:
                log.warning("could not tell admin %s about the new login: %s", admin, exc)


async def send_screenshot(bot: Bot, chat_id: int, runner: LoginRunner, t: Translator) -> None:
    if not runner.busy:
        if not await runner.screenshot_elsewhere(chat_id):
            await bot.send_message(chat_id=chat_id, text=t("login_not_running"))
        return
    picture = await runner.screenshot()
    if picture is None:
        await bot.send_message(chat_id=chat_id, text=t("login_no_page"))
        return
    await bot.send_photo(chat_id=chat_id, photo=BufferedInputFile(picture, "login.png"))


async def login_button(query: CallbackQuery, runner: LoginRunner, bot: Bot, t: Translator) -> None:
    await query.answer()
    if query.data == "login:cancel":
        await runner.cancel_anywhere()
    elif query.message is not None:
        await send_screenshot(bot, query.message.chat.id, runner, t)


async def status(
    message: Message, bridge: Bridge, models: ModelCatalog, started_at: float, t: Translator
) -> None:
    service = bridge.service
    login = await service.logins.current()
    now = datetime.now(UTC)
    if login is None:
        login_line = t("status_no_login")
    else:
        record = login.record
        login_line = t(
            "status_login",
            fingerprint=record.fingerprint,
            source=record.source or "?",
            age=_duration((now - record.obtained_at).total_seconds()),
        )
        if record.invalid_at:
            login_line += t("status_login_rejected")
        expires = login.auth.expires_at
        if expires is not None:
            left = (expires - now).total_seconds()
            login_line += (
                t("status_login_expires", duration=_duration(left))
                if left > 0
                else t("status_login_expired")
            )
    last_success = service.stats.last_success_at
    if last_success is None and login is not None and login.record.last_success_at:
        last_success = login.record.last_success_at.timestamp()
    counts = await bridge.answers.counts_by_status()
    answers = ", ".join(
        f"{status.value} {counts[status]}" for status in AnswerStatus if counts[status]
    )
    text = t(
        "status_admin",
        version=__version__,
        uptime=_duration(time.monotonic() - started_at),
        login=login_line,
        last_success=(
            t("status_ago", duration=_duration(time.time() - last_success))
            if last_success
            else t("status_never")
        ),
        last_error=service.stats.last_upstream_error or t("status_none"),
        in_flight=len(service.running),
        conversations=await bridge.conversations.count(),
        answers=answers or t("status_none"),
        database=bridge.engine_name,
    )
    settings = bridge.settings
    upstream = display_name(settings.upstream)
    if settings.upstream == "minimax-agent":
        upstream += f" ({settings.minimax_region}, {settings.minimax_model})"
    lines = [t("status_upstream", upstream=upstream)]
    if service.fallback is not None:
        state = (
            t("status_fallback_active", primary=display_name(settings.upstream))
            if service.failover.resting
            else t("status_fallback_idle")
        )
        lines.append(
            t("status_fallback", fallback=display_name(service.fallback.name), state=state)
        )
    lines.append(t("status_model", model=await models.current(message.chat.id)))
    text = "\n".join([*lines, text])
    if bridge.settings.redis_url is not None:
        unfinished = counts[AnswerStatus.STREAMING] + counts[AnswerStatus.QUEUED]
        text += t("status_cluster", instance=bridge.settings.instance_id, total=unfinished)
    await bridge.reply(message, text)


async def status_for_users(message: Message, bridge: Bridge, t: Translator) -> None:
    login = await bridge.service.logins.current()
    working = bridge.service.fallback is not None or (
        login is not None and login.record.invalid_at is None
    )
    await bridge.reply(message, t("status_user_ok") if working else t("status_user_needs_login"))


async def logout(message: Message, bridge: Bridge, t: Translator) -> None:
    removed = await bridge.logins.forget()
    await bridge.reply(message, t("logout_done") if removed else t("logout_nothing"))


async def admins_only(message: Message, bridge: Bridge, t: Translator) -> None:
    await bridge.reply(message, t("admins_only"))


async def in_private_only(message: Message, bridge: Bridge, t: Translator) -> None:
    await bridge.reply(message, t("admin_in_private"))


async def private_only_button(query: CallbackQuery, t: Translator) -> None:
    await query.answer(t("admins_only"), show_alert=True)


class PrivateCallback(BaseFilter):
    """A button pressed under a message in a private chat."""

    async def __call__(self, query: CallbackQuery) -> bool:
        message = query.message
        return message is not None and message.chat.type == "private"


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
    # Admin commands and buttons answer in private chats only: a group would see the login URL
    # (with its noVNC password), the screenshots and the bot's state.
    admins.message.filter(ChatTypes("private"), IsAdmin())
    admins.callback_query.filter(PrivateCallback(), IsAdmin())
    admins.message.register(login, Command("login"))
    admins.message.register(status, Command("status"))
    admins.message.register(logout, Command("logout"))
    admins.callback_query.register(login_button, CallbackPrefix("login:"))
    # Everyone else: a clear refusal, and nothing starts.
    others = Router(name="admin.others")
    others.message.register(status_for_users, Command("status"))
    others.message.register(
        in_private_only, Command("login", "logout"), ChatTypes("group", "supergroup")
    )
    others.message.register(admins_only, Command("login", "logout"))
    others.callback_query.register(private_only_button, CallbackPrefix("login:"))
    router.include_routers(admins, others)
    return router
