"""Stop requests: the draft's stop button (private chats) and the inline Stop button (groups)."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, MessageGenerationStopped

from bot.i18n import Translator
from bot.telegram.bridge import Bridge
from bot.telegram.filters import CallbackPrefix


async def draft_stopped(event: MessageGenerationStopped, bridge: Bridge) -> None:
    target = await bridge.service.stop_target(event.draft_id)  # the draft id is the answer id
    if target is not None and target.chat_id == event.chat.id:
        await bridge.service.stop(target.answer_id)


async def stop_button(query: CallbackQuery, bridge: Bridge, t: Translator) -> None:
    raw = (query.data or "").partition(":")[2]
    answer_id = int(raw) if raw.isascii() and raw.isdigit() else 0  # forged data: nothing
    target = await bridge.service.stop_target(answer_id) if answer_id else None
    if target is None:
        await query.answer(t("stop_gone"))
        return
    asker = target.user_id == query.from_user.id
    if not asker and not await bridge.is_chat_admin(target.chat_id, query.from_user.id):
        await query.answer(t("stop_not_yours"), show_alert=True)
        return
    await bridge.service.stop(target.answer_id)
    await query.answer(t("stop_done"))


def create_router() -> Router:
    router = Router(name="stopping")
    router.stopped_message_generation.register(draft_stopped)
    router.callback_query.register(stop_button, CallbackPrefix("stop:"))
    return router
