"""/model and /forget: a chat's model, and deleting its stored history (buttons confirm)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    CallbackQuery,
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)

from bot.i18n import Translator
from bot.services.models import ModelCatalog
from bot.telegram.bridge import Bridge
from bot.upstream import UpstreamFailure

CALLBACK_LIMIT = 64  # bytes of callback data Telegram keeps


class ModelChoice(CallbackData, prefix="model"):
    name: str  # "" = the default


class ForgetChoice(CallbackData, prefix="forget"):
    confirmed: bool


def _fits(name: str) -> bool:
    """A model name a button can carry (aiogram's separator is ':')."""
    return ":" not in name and len(ModelChoice(name=name).pack().encode()) <= CALLBACK_LIMIT


async def _chat_of_decider(query: CallbackQuery, bridge: Bridge, refusal: str) -> Chat | None:
    """The chat whose setting the press changes, if the presser may: a private user decides
    for their chat, a group's admins for the group (otherwise they are told `refusal`)."""
    message = query.message
    if message is None:
        await query.answer()
        return None
    chat = message.chat
    if chat.type != "private" and not await bridge.is_chat_admin(chat.id, query.from_user.id):
        await query.answer(refusal, show_alert=True)
        return None
    return chat


async def show_models(
    message: Message, bridge: Bridge, models: ModelCatalog, t: Translator
) -> None:
    try:
        offered = await models.available()
    except UpstreamFailure as exc:
        await bridge.reply(message, t("model_unavailable", reason=exc.message[:200]))
        return
    if not offered:
        await bridge.reply(message, t("model_none"))
        return
    current = await models.current(message.chat.id)
    rows = [
        [
            InlineKeyboardButton(
                text=("✓ " if name == current else "")
                + (t("model_default", model=name) if name == models.default else name),
                callback_data=ModelChoice(name=name).pack(),
            )
        ]
        for name in offered
        if _fits(name)
    ]
    if models.default not in offered:
        rows.insert(
            0,
            [
                InlineKeyboardButton(
                    text=("✓ " if current == models.default else "")
                    + t("model_default", model=models.default),
                    callback_data=ModelChoice(name="").pack(),
                )
            ],
        )
    await bridge.reply(
        message, t("model_choose", model=current), InlineKeyboardMarkup(inline_keyboard=rows)
    )


async def model_chosen(
    query: CallbackQuery,
    callback_data: ModelChoice,
    bridge: Bridge,
    models: ModelCatalog,
    t: Translator,
) -> None:
    chat = await _chat_of_decider(query, bridge, t("model_admins_only"))
    if chat is None:
        return
    name = callback_data.name
    try:
        offered = await models.available()
    except UpstreamFailure as exc:
        await query.answer(t("model_unavailable", reason=exc.message[:150]), show_alert=True)
        return
    if name and name != models.default and name not in offered:
        await query.answer(t("model_unknown"), show_alert=True)
        return
    await models.choose(chat.id, name or None)
    text = t("model_set", model=name) if name else t("model_reset", model=models.default)
    await query.answer()
    await _replace(bridge, query, text)


async def forget(message: Message, bridge: Bridge, t: Translator) -> None:
    user = message.from_user
    if message.chat.type != "private" and not await bridge.sent_by_admin(message):
        await bridge.reply(message, t("forget_admins_only"))
        return
    if user is None and message.sender_chat is None:
        return
    buttons = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=t("forget_yes"), callback_data=ForgetChoice(confirmed=True).pack()
                ),
                InlineKeyboardButton(
                    text=t("forget_no"), callback_data=ForgetChoice(confirmed=False).pack()
                ),
            ]
        ]
    )
    await bridge.reply(message, t("forget_confirm"), buttons)


async def forget_chosen(
    query: CallbackQuery, callback_data: ForgetChoice, bridge: Bridge, t: Translator
) -> None:
    chat = await _chat_of_decider(query, bridge, t("forget_admins_only"))
    if chat is None:
        return
    if callback_data.confirmed:
        deleted = await bridge.service.forget(chat.id)
        text = t.plural("forget_done", deleted)
    else:
        text = t("forget_kept")
    await query.answer()
    await _replace(bridge, query, text)


async def _replace(bridge: Bridge, query: CallbackQuery, text: str) -> None:
    """The question with its buttons becomes the answer (no button pressed twice)."""
    if query.message is not None:
        await bridge.replace_notice(query.message.chat.id, query.message.message_id, text)


def create_router() -> Router:
    router = Router(name="choices")
    router.message.register(show_models, Command("model"))
    router.message.register(forget, Command("forget"))
    router.callback_query.register(model_chosen, ModelChoice.filter())
    router.callback_query.register(forget_chosen, ForgetChoice.filter())
    return router
