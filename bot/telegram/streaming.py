"""One answer's life in Telegram: drafts in private chats, a growing message in groups.

A writer task per answer shows the newest text whenever the pacer grants a permit; nothing is
sent per chunk. When the answer grows past one message, the full part is sealed (sent or edited
one last time) and the text continues in a new message. The final state is always delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputRichMessage,
    MessageEntity,
    ReplyParameters,
)
from telegramify_markdown.entity import utf16_len

from bot.i18n import Translator
from bot.lifecycle import stop_tasks
from bot.logs import log_failure
from bot.services.answering import Note, Outcome
from bot.services.upstreams import FailoverReason
from bot.telegram import rich
from bot.telegram.pacer import Pacer, Priority
from bot.telegram.render import MESSAGE_LIMIT, Frame, PartSplitter, reasoning_block
from bot.upstream import display_name

log = logging.getLogger(__name__)

TYPING_EVERY = 4.5
# Long renders run here: two threads of their own, so they never queue behind (or hold up) the
# default executor's DNS lookups and file work.
RENDERING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="render")
CALL_GRACE = 10.0  # below the service's shutdown delivery time, so a final still goes out
FINAL_DELIVERY_ATTEMPTS = 8
RICH_REFUSALS = 3  # live rich frames refused (in all) before the answer goes plain


@dataclass(frozen=True, slots=True)
class Place:
    """Where an answer goes."""

    chat_id: int
    thread_id: int | None
    reply_to: int | None
    private: bool


NOTE_KEYS = {
    Note.STOPPED: "note_stopped",
    Note.INTERRUPTED: "note_interrupted",
    Note.RESTART: "note_restart",
    Note.EMPTY: "note_empty",
    Note.NO_LOGIN: "error_no_login",
    Note.LOGIN_EXPIRED: "error_login_expired",
    Note.KEY_REJECTED: "error_key_rejected",
    Note.UPSTREAM_DOWN: "error_upstream_down",
    Note.INTERNAL: "error_internal",
    Note.TRUNCATED: "note_truncated",
}


def note_text(
    note: Note, t: Translator, *, detail: str = "", retry_after: float | None = None
) -> str:
    if note is Note.NONE:
        return ""
    if note is Note.UPSTREAM_BUSY:
        return t.plural("error_upstream_busy", round(retry_after or 30))
    if note is Note.UPSTREAM_ERROR:
        return t("error_upstream", reason=detail or "?")
    return t(NOTE_KEYS[note])


def _rich_message(frame: Frame) -> InputRichMessage:
    if frame.rich == rich.HTML:
        return InputRichMessage(html=frame.text)
    return InputRichMessage(markdown=frame.text)


def stop_button(answer_id: int, t: Translator) -> InlineKeyboardMarkup:
    button = InlineKeyboardButton(text=t("stop_button"), callback_data=f"stop:{answer_id}")
    return InlineKeyboardMarkup(inline_keyboard=[[button]])


class _Formatting(enum.Enum):
    """How much of a frame's formatting Telegram still gets (it refused more before)."""

    ALL = "all formatting"
    NO_LINKS = "no links"
    NONE = "plain text"


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
        t: Translator,
        *,
        on_first_message: Callable[[int], Awaitable[None]] | None = None,
        show_reasoning: bool = False,
        rich_mode: str = "off",
        on_rich_refused: Callable[[], None] | None = None,
    ) -> None:
        self._bot = bot
        self._pacer = pacer
        self.place = place
        self.answer_id = answer_id
        self._t = t
        self.draft_id = answer_id
        self._use_drafts = place.private
        self._splitter = PartSplitter()
        self._splitter_ready = False  # made at the first answer text (the reasoning is known)
        self._show_reasoning = show_reasoning
        self._reasoning = ""
        self._reasoning_shown = Frame("")  # the block above the first part, once fixed
        self._markdown = ""
        self._changed = asyncio.Event()
        self._closing = False
        self._in_call = False
        self._writer: asyncio.Task[None] | None = None
        self._typing: asyncio.Task[None] | None = None
        self.message_ids: list[int] = []
        self._shown: list[Frame] = []  # what each message in message_ids shows
        self._markup: list[bool] = []  # whether it carries the Stop button
        self._draft_shown: Frame | None = None
        self._on_first_message = on_first_message
        self.first_frame_at: float | None = None
        self._gone = False
        self._formatting = _Formatting.ALL
        self._rich_mode = rich_mode  # RICH_MESSAGES: auto, on or off
        self._rich = False  # this answer goes as rich messages (decided once, kept)
        self._rich_splitter = rich.RichSplitter()
        self._on_rich_refused = on_rich_refused
        self._rich_refusals = 0
        self._rich_thinking = True  # a refused thinking block: the italic line instead
        self._skipped = False

    # --- AnswerOutput --------------------------------------------------------------------------

    @property
    def gone(self) -> bool:
        return self._gone

    def waiting(self) -> None:
        if self._typing is None:
            self._typing = asyncio.create_task(self._keep_typing())

    def update(self, markdown: str) -> None:
        self._markdown = markdown
        self._wake_writer()

    def think(self, reasoning: str) -> None:
        self._reasoning = reasoning
        if not self._markdown.strip():
            self._wake_writer()  # "thinking…" until the answer's first words

    def _wake_writer(self) -> None:
        self._changed.set()
        if self._writer is None and not self._closing:
            self._writer = asyncio.create_task(self._write_frames())
            self._writer.add_done_callback(
                lambda task: log_failure(task, f"the frames of answer {self.answer_id}", log)
            )

    async def finish(self, markdown: str, outcome: Outcome) -> list[int]:
        self._markdown = markdown
        self._closing = True
        self._stop_typing()
        if self._writer is not None:
            # A call in flight may finish (its text counts as shown); a wait for a permit not.
            grace = CALL_GRACE if self._in_call else 0.0
            await stop_tasks([self._writer], f"frames of answer {self.answer_id}", grace=grace)
        if self._gone:
            return self.message_ids
        while True:
            parts = await self._final_parts(markdown, outcome)
            was_rich = self._rich  # read after the parts: the final may be the first rich one
            await self._deliver_final(parts)
            if not was_rich or self._rich or self._gone:
                return self.message_ids

    async def _final_parts(self, markdown: str, outcome: Outcome) -> list[Frame]:
        """The answer's last parts with the note under them (or in a message of its own)."""
        parts = await self._parts(markdown, final=True) if markdown.strip() else []
        note = note_text(
            outcome.note, self._t, detail=outcome.detail, retry_after=outcome.retry_after
        )
        if outcome.switched_to is not None:
            switched = self._t("note_new_upstream", upstream=display_name(outcome.switched_to))
            note = f"{note}\n{switched}" if note else switched
        if outcome.answered_by is not None:
            via = self._t(
                "note_fallback_login"
                if outcome.fallback_reason is FailoverReason.LOGIN
                else "note_fallback_outage",
                fallback=display_name(outcome.answered_by),
            )
            note = f"{note}\n{via}" if note else via
        # A rich note is escaped Markdown: up to twice its length.
        room = rich.RICH_LIMIT - len(note) * 2 - 8 if parts and parts[-1].rich else None
        if parts and parts[-1].length <= (room or MESSAGE_LIMIT - len(note) - 2):
            parts[-1] = parts[-1].with_note(note)
        elif note:  # no room under the last part: the note gets a message of its own
            parts.append(Frame("").with_note(note))
        return parts

    # --- streaming frames ------------------------------------------------------------------------

    async def _write_frames(self) -> None:
        while not self._closing:
            await self._changed.wait()
            priority = Priority.FRAME if self._visible else Priority.URGENT
            async with self._pacer.permit(self.place.chat_id, priority):
                if self._closing:
                    return
                self._changed.clear()
                # Rendered only now, with a permit in hand: the newest text goes out.
                parts = (
                    await self._parts(self._markdown)
                    if self._markdown.strip()
                    else [self._thinking_frame()]
                )
                call = self._next_call(parts, final=False) if parts[-1].text.strip() else None
                if call is None:
                    continue
                self._in_call = True
                try:
                    await call()
                except TelegramRetryAfter:
                    pass  # the pacer holds the chat back; then the newest text goes
                except _Gone:
                    self._gone = True
                    return
                except (TelegramNetworkError, TelegramServerError) as exc:
                    log.warning("frame for answer %s not sent: %s", self.answer_id, exc)
                finally:
                    self._in_call = False
                if self._skipped:
                    self._skipped = False  # a refused frame: the next one waits for new text
                elif self._next_call(parts, final=False) is not None:
                    self._changed.set()  # e.g. a sealed part: the live one follows

    async def _parts(self, markdown: str, *, final: bool = False) -> list[Frame]:
        """Rendered parts; off the event loop when the unsealed text is long (the splitter
        serializes its own use, should a cancelled call still be running in its thread). With
        SHOW_REASONING the reasoning so far sits above the first part, in a collapsed quote.
        Rich parts (RICH_MESSAGES) once the answer wants them, as long as nothing of it has
        been sealed as a plain message yet (parts of one answer are never mixed)."""
        if self._rich or self._turns_rich(markdown):
            self._rich = True
            above = rich.reasoning_quote(self._reasoning) if self._show_reasoning else ""
            return self._rich_splitter.parts(markdown, above, final=final)
        if not self._splitter_ready:
            self._splitter_ready = True
            if self._show_reasoning and self._reasoning.strip():
                self._reasoning_shown = reasoning_block(self._reasoning)
                room = self._reasoning_shown.length + 2
                self._splitter = PartSplitter(first_budget=self._splitter.budget - room)
        if self._splitter.cheap(markdown):
            parts = self._splitter.parts(markdown)
        else:
            loop = asyncio.get_running_loop()
            parts = await loop.run_in_executor(RENDERING, self._splitter.parts, markdown)
        if self._reasoning_shown.text:
            parts[0] = self._reasoning_shown.above(parts[0])
        return parts

    def _turns_rich(self, markdown: str) -> bool:
        if self._rich_mode == "off" or self._splitter.sealed:
            return False
        if len(self.message_ids) > (0 if self._use_drafts else 1):
            return False
        return rich.wanted(markdown, self._rich_mode)

    def _refused_rich(self, exc: TelegramBadRequest | TelegramNotFound, frame: Frame) -> None:
        """Telegram refused a rich frame. A live frame cut somewhere Telegram did not like is
        skipped (the next one, with more text, may pass); a missing method (an older Bot API
        server), a refused final or refusals in a row put the answer on the entity path, the
        rich parts already sent kept as they are. Nothing is lost; counted in /metrics."""
        self._rich_refusals += 1
        live = not self._closing
        if isinstance(exc, TelegramBadRequest) and live and self._rich_refusals < RICH_REFUSALS:
            log.info("answer %s: a rich frame was refused (%s)", self.answer_id, exc.message)
            self._skipped = True
            return
        log.warning(
            "answer %s: rich message refused (%s); going on as plain messages",
            self.answer_id,
            exc.message,
        )
        self._rich = False
        self._rich_mode = "off"
        sealed = self._rich_splitter
        self._splitter = PartSplitter(
            sealed=[Frame(text, rich=rich.MARKDOWN) for text in sealed.sealed],
            _start=sealed.consumed,
            _reopen=sealed.reopen,
            first_budget=None,
        )
        self._splitter_ready = True
        if self._on_rich_refused is not None:
            self._on_rich_refused()

    def _thinking_frame(self) -> Frame:
        """While the model thinks and no answer text exists yet: in a private chat's draft a
        rich thinking block (with the latest reasoning line), elsewhere an italic line."""
        if not self._reasoning.strip():
            return Frame("")
        text = self._t("thinking")
        if self._use_drafts and self._rich_mode != "off" and self._rich_thinking:
            # The latest line of reasoning only where reasoning is shown at all.
            return rich.thinking_frame(self._reasoning if self._show_reasoning else "", text)
        return Frame(text, (MessageEntity(type="italic", offset=0, length=utf16_len(text)),))

    def _entities(self, frame: Frame) -> list[MessageEntity] | None:
        """The frame's entities, less what Telegram refused earlier in this answer."""
        if self._formatting is _Formatting.NONE:
            return None
        if self._formatting is _Formatting.NO_LINKS:
            return [entity for entity in frame.entities if entity.type != "text_link"] or None
        return list(frame.entities) or None

    def _refused_formatting(self, exc: TelegramBadRequest) -> bool:
        """Telegram refused our entities (a link it finds invalid, say): send less formatting
        from now on rather than lose the answer. True if there is less to try."""
        description = exc.message.lower()
        if "entit" not in description and "url" not in description:
            return False
        if self._formatting is _Formatting.NONE:
            return False
        self._formatting = (
            _Formatting.NO_LINKS if self._formatting is _Formatting.ALL else _Formatting.NONE
        )
        log.warning(
            "answer %s: Telegram refused its formatting (%s); sending %s",
            self.answer_id,
            exc.message,
            self._formatting.value,
        )
        return True

    @property
    def _visible(self) -> bool:
        return bool(self.message_ids) or self._draft_shown is not None

    def _next_call(
        self, parts: list[Frame], *, final: bool
    ) -> Callable[[], Awaitable[None]] | None:
        """The one call that brings Telegram closest to showing `parts`; None if it already
        shows them. While streaming, the last part is live: a draft in private chats, a message
        with a Stop button elsewhere. Every other part is a finished message."""
        last = len(parts) - 1
        for index, frame in enumerate(parts):
            live = index == last and not final
            if live and self._use_drafts:
                return None if self._draft_shown == frame else partial(self._draft, frame)
            if index >= len(self.message_ids):
                return partial(self._send, frame, markup=live)
            if self._shown[index] != frame or self._markup[index] != live:
                return partial(self._edit, index, frame, markup=live)
        return None

    # --- final delivery ----------------------------------------------------------------------

    async def _deliver_final(self, parts: list[Frame]) -> None:
        """Until Telegram shows `parts` (or refuses them as rich: the caller renders again)."""
        failures = 0
        rich_parts = self._rich
        while (call := self._next_call(parts, final=True)) is not None:
            if rich_parts and not self._rich:
                return
            try:
                async with self._pacer.permit(self.place.chat_id, Priority.URGENT):
                    await call()
            except TelegramRetryAfter:
                continue  # the pacer now holds this chat for retry_after
            except _Gone:
                self._gone = True
                return
            except (TelegramNetworkError, TelegramServerError) as exc:
                failures += 1
                if failures >= FINAL_DELIVERY_ATTEMPTS:
                    raise
                log.warning("final part of answer %s failed (%s), retrying", self.answer_id, exc)
                await asyncio.sleep(min(2**failures, 30))

    # --- calls ---------------------------------------------------------------------------------

    async def _send(self, frame: Frame, *, markup: bool) -> None:
        place = self.place
        reply = (
            ReplyParameters(message_id=place.reply_to, allow_sending_without_reply=True)
            if place.reply_to and not self.message_ids
            else None
        )
        buttons = stop_button(self.answer_id, self._t) if markup else None
        try:
            if frame.rich:
                message = await self._bot.send_rich_message(
                    chat_id=place.chat_id,
                    message_thread_id=place.thread_id,
                    rich_message=_rich_message(frame),
                    reply_parameters=reply,
                    reply_markup=buttons,
                )
            else:
                message = await self._bot.send_message(
                    chat_id=place.chat_id,
                    message_thread_id=place.thread_id,
                    text=frame.text,
                    entities=self._entities(frame),
                    reply_parameters=reply,
                    reply_markup=buttons,
                )
        except TelegramForbiddenError as exc:
            raise _Gone from exc
        except (TelegramBadRequest, TelegramNotFound) as exc:
            if frame.rich:
                self._refused_rich(exc, frame)
                return  # the next call sends it as a plain message
            if isinstance(exc, TelegramBadRequest) and self._refused_formatting(exc):
                return  # the next call sends it with less formatting
            raise
        self.message_ids.append(message.message_id)
        self._shown.append(frame)
        self._markup.append(markup)
        self._first_frame()
        if len(self.message_ids) == 1 and self._on_first_message is not None:
            await self._on_first_message(message.message_id)

    async def _edit(self, index: int, frame: Frame, *, markup: bool) -> None:
        buttons = stop_button(self.answer_id, self._t) if markup else None
        try:
            if frame.rich:
                await self._bot.edit_message_text(
                    chat_id=self.place.chat_id,
                    message_id=self.message_ids[index],
                    rich_message=_rich_message(frame),
                    reply_markup=buttons,
                )
            else:
                await self._bot.edit_message_text(
                    chat_id=self.place.chat_id,
                    message_id=self.message_ids[index],
                    text=frame.text,
                    entities=self._entities(frame),
                    reply_markup=buttons,
                )
        except TelegramBadRequest as exc:
            description = exc.message.lower()
            gone = "not found" in description or "can't be edited" in description
            if frame.rich and "not modified" not in description and not gone:
                self._refused_rich(exc, frame)
                return
            if not frame.rich and self._refused_formatting(exc):
                return
            if "not modified" not in description:
                if not gone:
                    raise
                # The user deleted our message: the next call continues in a new one.
                log.info("answer %s: message deleted by the user; continuing anew", self.answer_id)
                del self.message_ids[index:], self._shown[index:], self._markup[index:]
                return
        except TelegramForbiddenError as exc:
            raise _Gone from exc
        self._shown[index] = frame
        self._markup[index] = markup

    async def _draft(self, frame: Frame) -> None:
        try:
            if frame.rich:
                await self._bot.send_rich_message_draft(
                    chat_id=self.place.chat_id,
                    draft_id=self.draft_id,
                    message_thread_id=self.place.thread_id,
                    rich_message=_rich_message(frame),
                    can_stop=True,
                )
            else:
                await self._bot.send_message_draft(
                    chat_id=self.place.chat_id,
                    draft_id=self.draft_id,
                    message_thread_id=self.place.thread_id,
                    text=frame.text,
                    entities=self._entities(frame),
                    can_stop=True,
                )
        except TelegramForbiddenError as exc:
            raise _Gone from exc
        except TelegramNotFound as exc:
            if not frame.rich:
                raise
            self._refused_rich(exc, frame)
            return
        except TelegramBadRequest as exc:
            if frame.rich == rich.HTML:
                log.info("answer %s: thinking block refused (%s)", self.answer_id, exc.message)
                self._rich_thinking = False  # the italic line instead; the answer stays rich
                return
            if frame.rich:
                self._refused_rich(exc, frame)
                return
            if self._refused_formatting(exc):
                return
            log.warning(
                "drafts refused in chat %s (%s); editing a message instead",
                self.place.chat_id,
                exc.message,
            )
            self._use_drafts = False
            return
        self._draft_shown = frame
        self._first_frame()

    def _first_frame(self) -> None:
        if self.first_frame_at is None:
            self.first_frame_at = time.monotonic()
            self._stop_typing()

    # --- typing ----------------------------------------------------------------------------------

    async def _keep_typing(self) -> None:
        with contextlib.suppress(Exception):
            while self.first_frame_at is None and not self._closing:
                # Cosmetic: dropped while the pacer is busy, so it never costs a frame its slot.
                if not self._pacer.busy:
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
