"""What the handlers call: turns a Telegram message into a question and shows the answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

from aiogram import Bot
from aiogram.exceptions import AiogramError, TelegramAPIError, TelegramRetryAfter
from aiogram.types import InlineKeyboardMarkup, Message, ReplyParameters

from bot.config import Settings
from bot.i18n import Translator
from bot.lifecycle import stop_tasks
from bot.logs import log_failure
from bot.metrics import Metrics
from bot.services.answering import AnswerService, Question, Refusal
from bot.services.logins import LoginService
from bot.storage.answers import AnswerRecord, AnswerStore
from bot.storage.chat_settings import ChatSettingsStore
from bot.storage.conversations import ConversationKey, ConversationStore
from bot.storage.database import Database
from bot.storage.models import NO_TOPIC, SHARED, ContextMode, utcnow
from bot.storage.retry import through_outage
from bot.telegram.languages import Languages
from bot.telegram.pacer import Pacer, Priority
from bot.telegram.streaming import Place, TelegramAnswer, note_text

log = logging.getLogger(__name__)

NOTICE_ATTEMPTS = 4

# An answer this old whose instance is not running will not be finished by anyone.
ABANDONED_AFTER = timedelta(minutes=10)


def topic_of(message: Message) -> int | None:
    """The forum (or private-chat) topic a message belongs to; None outside topics."""
    return message.message_thread_id if message.is_topic_message else None


class Bridge:
    """Handlers call this. Nothing between an update's arrival and the question's place in its
    conversation's queue suspends (chat settings are cached, the rate limiter is synchronous),
    so questions take their places in the order Telegram delivered them; the answer itself runs
    in the background, and the handler returns at once."""

    def __init__(
        self,
        bot: Bot,
        pacer: Pacer,
        service: AnswerService,
        database: Database,
        settings: Settings,
        languages: Languages,
        metrics: Metrics | None = None,
    ) -> None:
        self.bot = bot
        self.metrics = metrics
        self.pacer = pacer
        self.service = service
        self.settings = settings
        self.languages = languages
        self.engine_name = database.engine_name
        self.logins = LoginService(database, settings.upstream)
        self.conversations = ConversationStore(database)
        self.answers = AnswerStore(database)
        self.chat_settings = ChatSettingsStore(database)
        self._modes: dict[int, ContextMode] = {}
        self._migrations: dict[int, asyncio.Event] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def load(self) -> None:
        """Cache the chat settings that differ from the defaults."""
        chats = await self.chat_settings.all()
        self._modes = {item.chat_id: item.context_mode for item in chats}
        await self.languages.load(chats)

    def context_mode(self, chat_id: int) -> ContextMode:
        return self._modes.get(chat_id, ContextMode.SHARED)

    async def set_context_mode(self, chat_id: int, mode: ContextMode) -> None:
        await self.chat_settings.set_context_mode(chat_id, mode)
        self._modes[chat_id] = mode

    # --- questions -----------------------------------------------------------------------------

    def key_for(self, message: Message) -> ConversationKey:
        thread = topic_of(message) or NO_TOPIC
        user = SHARED
        if (
            message.chat.type != "private"
            and message.from_user is not None
            and self.context_mode(message.chat.id) is ContextMode.PERSONAL
        ):
            user = message.from_user.id
        return ConversationKey(message.chat.id, thread, user)

    async def ask(self, message: Message, text: str, t: Translator) -> None:
        """Queue `text` (already stripped of commands and mentions) for an answer in the
        message's chat; returns once it has its place."""
        text = text.strip()
        user = message.from_user
        if user is None:
            return
        if len(text) > self.settings.max_input_chars:
            await self.reply(
                message,
                t.plural("too_long", len(text), limit=self.settings.max_input_chars),
            )
            return
        if (migration := self._migrations.get(message.chat.id)) is not None:
            await migration.wait()  # the group's conversations are on their way to this chat
        key = self.key_for(message)
        private = message.chat.type == "private"
        if not private and key.user_id == SHARED:
            text = f"{user.full_name}: {text}"
        question = Question(
            key=key,
            text=text,
            chat_id=message.chat.id,
            thread_id=topic_of(message) or NO_TOPIC,
            user_id=user.id,
            message_id=message.message_id,
        )
        place = Place(
            chat_id=message.chat.id,
            thread_id=topic_of(message),
            reply_to=None if private else message.message_id,
            private=private,
        )

        def make_output(answer_id: int) -> TelegramAnswer:
            async def remember_message(message_id: int) -> None:
                # Where a restart finds the answer to mark; not worth failing the answer for.
                try:
                    await through_outage(
                        lambda: self.answers.first_text(answer_id, [message_id]),
                        f"recording answer {answer_id}'s message",
                        deadline=5.0,
                    )
                except Exception as exc:
                    log.warning("answer %s: first message not recorded (%s)", answer_id, exc)

            return TelegramAnswer(
                self.bot,
                self.pacer,
                place,
                answer_id,
                t,
                on_first_message=remember_message,
                show_reasoning=self.settings.show_reasoning,
                rich_mode=self.settings.rich_messages,
                on_rich_refused=self.metrics.rich_refused if self.metrics else None,
            )

        async def queued(position: int) -> None:
            await self.say(message, t.plural("queued", position))

        answer_id = 0

        async def record() -> None:
            nonlocal answer_id
            answer_id = await self.service.enqueue(question)

        async def answer() -> None:
            try:
                outcome = await self.service.answer(question, answer_id, make_output)
            except Exception:
                # The database stayed away, say: the question is not silently dropped.
                log.exception("question %s in chat %s failed", message.message_id, message.chat.id)
                await self.say(message, t("error_internal"))
                return
            if isinstance(outcome, Refusal):
                await self.say(message, note_text(outcome.note, t))

        try:
            if not await self.service.schedule(
                key, message.message_id, answer, queued, first=record
            ):
                await self.reply(message, t("queue_full"))
        except Exception:
            log.exception("could not record question %s in chat %s", message.message_id, key)
            await self.reply(message, t("error_internal"))

    async def new_conversation(self, message: Message, t: Translator) -> None:
        """/new, in its turn: questions sent before it are answered in the old conversation."""
        key = self.key_for(message)

        async def reset() -> None:
            done = await self.service.reset(key)
            await self.say(message, t("new_conversation") if done else t("nothing_to_reset"))

        if not await self.service.schedule(key, message.message_id, reset):
            await self.reply(message, t("queue_full"))

    async def show_title(self, message: Message, t: Translator) -> None:
        """/title, in its turn: the title includes what the answers before it taught us."""
        key = self.key_for(message)

        async def title() -> None:
            name = await self.service.title(key)
            await self.say(message, t("title", title=name) if name else t("no_title"))

        if not await self.service.schedule(key, message.message_id, title):
            await self.reply(message, t("queue_full"))

    async def reply(
        self, message: Message, text: str, buttons: InlineKeyboardMarkup | None = None
    ) -> None:
        """A short notice from a handler, sent in the background: a handler (and the webhook
        request holding it) never waits for a paced send."""
        self.spawn(self.say(message, text, buttons))

    async def replace_notice(self, chat_id: int, message_id: int, text: str) -> None:
        """A notice with buttons becomes the outcome of the press (paced like a notice)."""
        try:
            async with self.pacer.permit(chat_id, Priority.NOTICE):
                await self.bot.edit_message_text(chat_id=chat_id, message_id=message_id, text=text)
        except TelegramAPIError as exc:
            log.info("could not update notice %s in chat %s: %s", message_id, chat_id, exc)

    async def say(
        self, message: Message, text: str, buttons: InlineKeyboardMarkup | None = None
    ) -> None:
        """A short notice in the message's chat and topic, awaited: for work that runs in a
        conversation's turn, so the next turn's answer cannot overtake it. Notices go behind
        answers' first frames and finals, ahead of their intermediate frames."""
        chat_id, thread_id, reply_to = message.chat.id, topic_of(message), message.message_id
        for _ in range(NOTICE_ATTEMPTS):
            try:
                async with self.pacer.permit(chat_id, Priority.NOTICE):
                    await self.bot.send_message(
                        chat_id=chat_id,
                        message_thread_id=thread_id,
                        text=text,
                        reply_parameters=ReplyParameters(
                            message_id=reply_to, allow_sending_without_reply=True
                        ),
                        reply_markup=buttons,
                    )
                return
            except TelegramRetryAfter:
                continue  # the pacer holds the chat for retry_after; then again
            except TelegramAPIError as exc:
                log.warning("could not reply in chat %s: %s", chat_id, exc)
                return

    # --- chat lifecycle ------------------------------------------------------------------------

    async def migrate(self, old_chat_id: int, new_chat_id: int) -> None:
        """Move a group's conversations to its new supergroup id. Questions in the new chat
        wait for this (they would otherwise start a conversation of their own)."""
        gate = self._migrations.setdefault(new_chat_id, asyncio.Event())
        try:
            moved = await self.conversations.move_chat(old_chat_id, new_chat_id)
            if old_chat_id in self._modes:
                self._modes.setdefault(new_chat_id, self._modes.pop(old_chat_id))
            self.languages.moved(old_chat_id, new_chat_id)
            await self.answers.move_chat(old_chat_id, new_chat_id)
        finally:
            gate.set()
            if self._migrations.get(new_chat_id) is gate:
                del self._migrations[new_chat_id]
        if moved:
            log.info(
                "group %s became supergroup %s; %d conversation(s) moved",
                old_chat_id,
                new_chat_id,
                moved,
            )

    async def sent_by_admin(self, message: Message) -> bool:
        """The sender administers the message's group (an anonymous admin posts as the group)."""
        if message.sender_chat is not None:
            return message.sender_chat.id == message.chat.id
        user = message.from_user
        return user is not None and await self.is_chat_admin(message.chat.id, user.id)

    async def shared_in_group(self, message: Message) -> bool:
        """The message belongs to a group's conversation shared by its members."""
        return (
            message.chat.type in ("group", "supergroup")
            and self.context_mode(message.chat.id) is ContextMode.SHARED
        )

    async def is_chat_admin(self, chat_id: int, user_id: int) -> bool:
        try:
            member = await self.bot.get_chat_member(chat_id=chat_id, user_id=user_id)
        except AiogramError as exc:
            log.warning("could not check admin rights in chat %s: %s", chat_id, exc)
            return False
        return member.status in ("creator", "administrator")

    async def recover_interrupted(self) -> int:
        """Answers a crash left half-streamed: say so in Telegram and close them. With several
        instances (Redis), each takes only its own: the others' are still streaming."""
        scope = self.settings.instance_id if self.settings.redis_url is not None else None
        closed = await self._close_and_tell(await self.answers.unfinished(scope))
        if closed:
            log.info("marked %d answer(s) interrupted by the last shutdown", closed)
        return closed

    async def recover_abandoned(self, instance_running: Callable[[str], Awaitable[bool]]) -> int:
        """Answers left unfinished for ABANDONED_AFTER by instances that are not running (scaled
        down, or gone for good): nobody else would ever tell their users."""
        cutoff = utcnow() - ABANDONED_AFTER
        candidates = [
            answer
            for answer in await self.answers.unfinished()
            if answer.instance_id != self.settings.instance_id
            and (answer.started_at or answer.created_at) < cutoff
        ]
        gone: dict[str | None, bool] = {}
        for answer in candidates:
            if answer.instance_id not in gone:
                running = answer.instance_id is not None and await instance_running(
                    answer.instance_id
                )
                gone[answer.instance_id] = not running
        closed = await self._close_and_tell([a for a in candidates if gone[a.instance_id]])
        if closed:
            log.info("marked %d answer(s) of stopped instances interrupted", closed)
        return closed

    async def _close_and_tell(self, leftovers: list[AnswerRecord]) -> int:
        closed = set(await self.answers.mark_interrupted([answer.id for answer in leftovers]))
        for answer in leftovers:
            if answer.id not in closed:
                continue  # another instance got there first
            target = (
                answer.bot_message_ids[-1] if answer.bot_message_ids else answer.user_message_id
            )
            with contextlib.suppress(TelegramAPIError):
                if answer.bot_message_ids:
                    # Drop the Stop button from the frozen message.
                    await self.bot.edit_message_reply_markup(
                        chat_id=answer.chat_id, message_id=answer.bot_message_ids[-1]
                    )
            try:
                await self.bot.send_message(
                    chat_id=answer.chat_id,
                    message_thread_id=answer.thread_id or None,
                    text=self.languages.for_ids(answer.user_id, answer.chat_id)("note_restart"),
                    reply_parameters=ReplyParameters(
                        message_id=target, allow_sending_without_reply=True
                    )
                    if target
                    else None,
                )
            except TelegramAPIError as exc:
                log.warning("could not mark answer %s as interrupted: %s", answer.id, exc)
        return len(closed)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Long work a handler starts and does not wait for; ended at shutdown."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        log_failure(task, "background work", log)

    async def shutdown(self) -> None:
        await self.service.shutdown(self.settings.shutdown_grace)
        await stop_tasks(list(self._background), "background work of handlers")
