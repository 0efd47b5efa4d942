"""The naive baseline, as most ChatGPT-style Telegram bots stream: an edit (or draft) per chunk,
a new HTTP session per upstream request, plain text cut at 4096 characters, errors on
intermediate frames ignored, the final message retried until Telegram takes it.

Run by the benchmark as a separate process, exactly like the real bot."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from aiogram import Bot, Dispatcher, F
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError, TelegramRetryAfter
from aiogram.types import Message

from bot.hailuo import AuthState, HailuoClient, TextDelta

LIMIT = 4096


async def answer(message: Message, bot: Bot, auth: AuthState, base_url: str) -> None:
    text = (message.text or "").removeprefix("/ask").strip()
    private = message.chat.type == "private"
    sent: Message | None = None
    shown = latest = ""
    async with HailuoClient(base_url) as client:  # a new session for every request
        async for event in client.stream(auth, text):
            if not isinstance(event, TextDelta) or not event.text.strip():
                continue
            latest = frame = event.text[:LIMIT]
            if frame == shown:
                continue
            try:
                if private:
                    await bot.send_message_draft(
                        chat_id=message.chat.id, draft_id=message.message_id, text=frame
                    )
                elif sent is None:
                    sent = await message.reply(frame)
                else:
                    await bot.edit_message_text(
                        chat_id=message.chat.id, message_id=sent.message_id, text=frame
                    )
                shown = frame
            except TelegramAPIError:
                pass  # a lost frame: the next chunk will try again
    final = latest or "…"
    while True:
        try:
            if private or sent is None:
                await bot.send_message(chat_id=message.chat.id, text=final)
            elif final != sent.text:
                await bot.edit_message_text(
                    chat_id=message.chat.id, message_id=sent.message_id, text=final
                )
            return
        except TelegramRetryAfter as exc:
            await asyncio.sleep(exc.retry_after)
        except TelegramAPIError:
            return


async def run(auth: AuthState) -> None:
    session = AiohttpSession(api=TelegramAPIServer.from_base(os.environ["TELEGRAM_API_URL"]))
    bot = Bot(os.environ["BOT_TOKEN"], session=session)
    dispatcher = Dispatcher(auth=auth, base_url=os.environ["HAILUO_BASE_URL"])
    dispatcher.message.register(answer, F.text)
    await dispatcher.start_polling(bot)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(AuthState.from_json(Path(os.environ["AUTH_FILE"]).read_bytes())))
