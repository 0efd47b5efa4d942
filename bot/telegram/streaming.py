"""One answer's life in Telegram: drafts in private chats, a growing message in groups.

A writer task per answer shows the newest text whenever the pacer grants a permit; nothing is
sent per chunk. When the answer grows past one message, the full part is sealed (sent or edited
one last time) and the text continues in a new message. The final state is always delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters

from bot.services.answering import Note, Outcome
from bot.telegram import texts
from bot.telegram.pacer import Pacer, Priority
from bot.telegram.render import Frame, PartSplitter

log = logging.getLogger(__name__)

TYPING_EVERY = 4.5
FINAL_DELIVERY_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class Place:
    """Where an answer goes."""

    chat_id: int
    thread_id: int | None
    reply_to: int | None
    private: bool


NOTES = {
    Note.NONE: "",
    Note.STOPPED: texts.NOTE_STOPPED,
    Note.INTERRUPTED: texts.NOTE_INTERRUPTED,
    Note.RESTART: texts.NOTE_RESTART,
    Note.EMPTY: texts.NOTE_EMPTY,
    Note.NO_LOGIN: texts.ERROR_NO_LOGIN,
    Note.LOGIN_EXPIRED: texts.ERROR_LOGIN_EXPIRED,
    Note.UPSTREAM_DOWN: texts.ERROR_UPSTREAM_DOWN,
    Note.INTERNAL: texts.ERROR_INTERNAL,
}


def note_text(outcome: Outcome) -> str:
    if outcome.note is Note.UPSTREAM_BUSY:
        return texts.ERROR_UPSTREAM_BUSY.format(seconds=round(outcome.retry_after or 30))
    if outcome.note is Note.UPSTREAM_ERROR:
        return texts.ERROR_UPSTREAM.format(reason=outcome.detail or "unknown error")
    return NOTES[outcome.note]


def stop_button(answer_id: int) -> InlineKeyboardMarkup:
    button = InlineKeyboardButton(text=texts.STOP_BUTTON, callback_data=f"stop:{answer_id}")
    return InlineKeyboardMarkup(inline_keyboard=[[button]])


class _Gone(Exception):
    """The chat refuses our messages (bot blocked, kicked): give up on it."""


class TelegramAnswer:
    """Implements the service's AnswerOutput for one answer."""

    def __init__(
        self,
        bot: Bot,
        pacer: Pacer,
        place: Place,
        answer_id: int,
        *,
        on_first_message: Callable[[int], Awaitable[None]] | None = None,
        on_first_frame: Callable[[], None] | None = None,
    ) -> None:
        self._bot = bot
        self._pacer = pacer
        self.place = place
        self.answer_id = answer_id
        self.draft_id = answer_id
        self._use_drafts = place.private
        self._splitter = PartSplitter()
        self._markdown = ""
        self._changed = asyncio.Event()
        self._closing = False
        self._in_call = False
        self._writer: asyncio.Task[None] | None = None
        self._typing: asyncio.Task[None] | None = None
        self.message_ids: list[int] = []
        self._shown: list[Frame] = []  # what each message in message_ids shows
        self._shown_live_markup = False  # the last message still carries the Stop button
        self._draft_shown: Frame | None = None
        self._on_first_message = on_first_message
        self._on_first_frame = on_first_frame
        self.first_frame_at: float | None = None
        self.calls = 0
        self._gone = False

    # --- AnswerOutput --------------------------------------------------------------------------

    @property
    def gone(self) -> bool:
        return self._gone

    def waiting(self) -> None:
        if self._typing is None:
            self._typing = asyncio.create_task(self._keep_typing())

    def update(self, markdown: str) -> None:
        self._markdown = markdown
        self._changed.set()
        if self._writer is None and not self._closing:
            self._writer = asyncio.create_task(self._write_frames())

    async def finish(self, markdown: str, outcome: Outcome) -> list[int]:
        self._markdown = markdown
        self._closing = True
        self._stop_typing()
        if self._writer is not None:
            if not self._in_call:
                self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._gone:
            return self.message_ids
        parts = self._splitter.parts(markdown) if markdown.strip() else []
        note = note_text(outcome)
        if parts:
            parts[-1] = parts[-1].with_note(note)
        elif note:
            parts = [Frame("").with_note(note)]
        await self._deliver_final(parts)
        return self.message_ids

    # --- streaming frames ------------------------------------------------------------------------

    async def _write_frames(self) -> None:
        while not self._closing:
            await self._changed.wait()
            priority = Priority.FRAME if self._visible else Priority.URGENT
            async with self._pacer.permit(self.place.chat_id, priority):
                if self._closing:
                    return
                self._changed.clear()
                parts = self._splitter.parts(self._markdown)
                self._in_call = True
                try:
                    more = await self._one_step(parts)
                except TelegramRetryAfter:
                    more = True  # the pacer holds the chat back; then the newest text goes
                except _Gone:
                    self._gone = True
                    return
                except (TelegramNetworkError, TelegramServerError) as exc:
                    log.warning("frame for answer %s not sent: %s", self.answer_id, exc)
                    more = True
                finally:
                    self._in_call = False
                if more:
                    self._changed.set()

    @property
    def _visible(self) -> bool:
        return bool(self.message_ids) or self._draft_shown is not None

    async def _one_step(self, parts: list[Frame]) -> bool:
        """Make one call towards showing `parts` while streaming; True if more calls are due."""
        sealed, live = parts[:-1], parts[-1]
        # Sealed parts become permanent messages first, in order.
        for index, frame in enumerate(sealed):
            if index >= len(self.message_ids):
                await self._send(frame, markup=False)
                return True
            if self._shown[index] != frame or (
                self._shown_live_markup and index == len(self.message_ids) - 1
            ):
                await self._edit(index, frame, markup=False)
                return True
        if not live.text.strip():
            return False
        if self._use_drafts:
            if self._draft_shown != live:
                await self._draft(live)
            return False
        live_index = len(sealed)
        if live_index >= len(self.message_ids):
            await self._send(live, markup=True)
        elif self._shown[live_index] != live:
            await self._edit(live_index, live, markup=True)
        return False

    # --- final delivery ----------------------------------------------------------------------

    async def _deliver_final(self, parts: list[Frame]) -> None:
        for index, frame in enumerate(parts):
            for attempt in range(FINAL_DELIVERY_ATTEMPTS):
                try:
                    async with self._pacer.permit(self.place.chat_id, Priority.URGENT):
                        if index >= len(self.message_ids):
                            await self._send(frame, markup=False)
                        elif self._shown[index] != frame or (
                            self._shown_live_markup and index == len(self.message_ids) - 1
                        ):
                            await self._edit(index, frame, markup=False)
                    break
                except TelegramRetryAfter:
                    continue  # the pacer now holds this chat for retry_after
                except _Gone:
                    self._gone = True
                    return
                except (TelegramNetworkError, TelegramServerError) as exc:
                    log.warning(
                        "final part of answer %s failed (%s), retrying", self.answer_id, exc
                    )
                    await asyncio.sleep(min(2**attempt, 30))
            else:
                raise RuntimeError(f"answer {self.answer_id}: part {index} could not be delivered")
        # Stale messages beyond the final parts (never expected) would keep a Stop button.
        self._shown_live_markup = False

    # --- calls ---------------------------------------------------------------------------------

    async def _send(self, frame: Frame, *, markup: bool) -> None:
        place = self.place
        reply = (
            ReplyParameters(message_id=place.reply_to, allow_sending_without_reply=True)
            if place.reply_to and not self.message_ids
            else None
        )
        try:
            message = await self._bot.send_message(
                chat_id=place.chat_id,
                message_thread_id=place.thread_id,
                text=frame.text,
                entities=list(frame.entities) or None,
                reply_parameters=reply,
                reply_markup=stop_button(self.answer_id) if markup else None,
            )
        except TelegramForbiddenError as exc:
            raise _Gone from exc
        finally:
            self.calls += 1
        self.message_ids.append(message.message_id)
        self._shown.append(frame)
        self._shown_live_markup = markup
        self._first_frame()
        if len(self.message_ids) == 1 and self._on_first_message is not None:
            await self._on_first_message(message.message_id)

    async def _edit(self, index: int, frame: Frame, *, markup: bool) -> None:
        try:
            await self._bot.edit_message_text(
                chat_id=self.place.chat_id,
                message_id=self.message_ids[index],
                text=frame.text,
                entities=list(frame.entities) or None,
                reply_markup=stop_button(self.answer_id) if markup else None,
            )
        except TelegramBadRequest as exc:
            description = exc.message.lower()
            if "not modified" in description:
                pass  # already shows exactly this
            elif "not found" in description or "can't be edited" in description:
                # The user deleted our message: continue in a new one.
                del self.message_ids[index:]
                del self._shown[index:]
                log.info("answer %s: message deleted by the user; continuing anew", self.answer_id)
                await self._send(frame, markup=markup)
                return
            else:
                raise
        except TelegramForbiddenError as exc:
            raise _Gone from exc
        finally:
            self.calls += 1
        self._shown[index] = frame
        if index == len(self.message_ids) - 1:
            self._shown_live_markup = markup

    async def _draft(self, frame: Frame) -> None:
        try:
            await self._bot.send_message_draft(
                chat_id=self.place.chat_id,
                draft_id=self.draft_id,
                message_thread_id=self.place.thread_id,
                text=frame.text,
                entities=list(frame.entities) or None,
                can_stop=True,
            )
        except TelegramForbiddenError as exc:
            raise _Gone from exc
        except TelegramBadRequest as exc:
            log.warning(
                "drafts refused in chat %s (%s); editing a message instead",
                self.place.chat_id,
                exc.message,
            )
            self._use_drafts = False
            return
        finally:
            self.calls += 1
        self._draft_shown = frame
        self._first_frame()

    def _first_frame(self) -> None:
        if self.first_frame_at is None:
            self.first_frame_at = time.monotonic()
            self._stop_typing()
            if self._on_first_frame is not None:
                self._on_first_frame()

    # --- typing ----------------------------------------------------------------------------------

    async def _keep_typing(self) -> None:
        with contextlib.suppress(Exception):
            while self.first_frame_at is None and not self._closing:
                await self._bot.send_chat_action(
                    chat_id=self.place.chat_id,
                    action="typing",
                    message_thread_id=self.place.thread_id,
                )
                await asyncio.sleep(TYPING_EVERY)

    def _stop_typing(self) -> None:
        if self._typing is not None:
            self._typing.cancel()
            self._typing = None
