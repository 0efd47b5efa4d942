"""Answer a question in a conversation: the one place where Hailuo, storage and a front end meet.

The front end (Telegram) is reached only through the small `AnswerOutput` protocol, so this module
knows nothing of Telegram, and the Hailuo client knows nothing of either.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from bot.hailuo import (
    AuthRejected,
    Conversation,
    ConversationStarted,
    Finished,
    HailuoClient,
    HailuoError,
    RateLimited,
    SignatureRejected,
    TextDelta,
    TitleGenerated,
)
from bot.services.logins import ActiveLogin, LoginService
from bot.services.queue import ConversationQueue
from bot.storage.answers import AnswerStore, ConversationUpdate
from bot.storage.conversations import ConversationKey, ConversationRecord, ConversationStore
from bot.storage.database import Database
from bot.storage.models import AnswerStatus

log = logging.getLogger(__name__)

SHUTDOWN_DELIVERY_SECONDS = 15.0


class Note(enum.Enum):
    """What the user is told under (or instead of) an answer."""

    NONE = "none"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"
    RESTART = "restart"
    EMPTY = "empty"
    NO_LOGIN = "no_login"
    LOGIN_EXPIRED = "login_expired"
    UPSTREAM_BUSY = "upstream_busy"
    UPSTREAM_DOWN = "upstream_down"
    UPSTREAM_ERROR = "upstream_error"
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class Outcome:
    status: AnswerStatus
    note: Note = Note.NONE
    detail: str = ""
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """The question was not sent upstream at all (no usable login, shutting down)."""

    note: Note


class AnswerOutput(Protocol):
    """Where an answer is shown while it grows."""

    def waiting(self) -> None:
        """Nothing to show yet (a typing indicator is welcome)."""

    def update(self, markdown: str) -> None:
        """The answer so far; must not block: the output paces itself."""

    async def finish(self, markdown: str, outcome: Outcome) -> list[int]:
        """Show the final state; return the ids of the messages that hold it."""

    @property
    def gone(self) -> bool:
        """True when the user can no longer be reached (blocked the bot, left the chat)."""


class AdminNotifier(Protocol):
    async def login_problem(self, note: Note, fingerprint: str | None) -> None: ...


@dataclass(frozen=True, slots=True)
class Question:
    key: ConversationKey
    text: str  # exactly what goes to Hailuo
    chat_id: int
    thread_id: int
    user_id: int
    message_id: int


@dataclass(eq=False)
class RunningAnswer:
    answer_id: int
    question: Question
    task: asyncio.Task[None] | None = None
    stop_reason: Note | None = None

    def stop(self, reason: Note = Note.STOPPED) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        if self.task is not None:
            self.task.cancel()


@dataclass
class _Progress:
    text: str = ""
    conversation: Conversation | None = None
    title: str = ""
    first_text_at: float | None = None


@dataclass
class AnswerStats:
    """Counters for /status and metrics."""

    started: int = 0
    last_success_at: float | None = None
    last_upstream_error: str = ""


class AnswerService:
    def __init__(
        self,
        database: Database,
        client: HailuoClient,
        notifier: AdminNotifier,
        *,
        queue: ConversationQueue | None = None,
    ) -> None:
        self._conversations = ConversationStore(database)
        self._answers = AnswerStore(database)
        self._logins = LoginService(database)
        self._client = client
        self._notifier = notifier
        self._queue = queue or ConversationQueue()
        self.running: dict[int, RunningAnswer] = {}
        self.stats = AnswerStats()
        self._closing = False
        self._no_login_reported = False
        self._idle = asyncio.Event()
        self._idle.set()

    async def answer(
        self,
        question: Question,
        make_output: Callable[[int], AnswerOutput],
        on_queued: Callable[[int], Awaitable[None]] | None = None,
    ) -> Outcome | Refusal:
        """Answer in order within the conversation, or say why the question was not sent."""
        async with self._queue.turn(question.key, question.message_id, on_queued):
            if self._closing:
                return Refusal(Note.RESTART)
            login = await self._logins.current()
            if login is None:
                if not self._no_login_reported:
                    self._no_login_reported = True
                    await self._notifier.login_problem(Note.NO_LOGIN, None)
                return Refusal(Note.NO_LOGIN)
            if login.record.invalid_at is not None:
                return Refusal(Note.LOGIN_EXPIRED)  # admins were told when it was rejected
            self._no_login_reported = False
            record, answer_id = await self._answers.begin(
                question.key,
                chat_id=question.chat_id,
                thread_id=question.thread_id,
                user_id=question.user_id,
                user_message_id=question.message_id,
            )
            output = make_output(answer_id)
            return await self._run(question, record, login, answer_id, output)

    async def title(self, key: ConversationKey, order: int) -> str:
        """The conversation's title, once the answers asked before have been saved."""
        async with self._queue.turn(key, order):
            record = await self._conversations.get(key)
            return record.title if record is not None else ""

    async def reset(self, key: ConversationKey, order: int) -> bool:
        """Start a fresh conversation, in turn with the questions around it."""
        async with self._queue.turn(key, order):
            return await self._conversations.reset(key)

    async def _run(
        self,
        question: Question,
        record: ConversationRecord,
        login: ActiveLogin,
        answer_id: int,
        output: AnswerOutput,
    ) -> Outcome:
        running = RunningAnswer(answer_id, question)
        self.running[answer_id] = running
        self._idle.clear()
        self.stats.started += 1
        progress = _Progress()
        conversation = (
            Conversation(
                chat_id=record.upstream_chat_id,
                token_fingerprint=record.token_fingerprint,
                character_id=record.character_id,
            )
            if record.upstream_chat_id
            else None
        )
        output.waiting()
        running.task = asyncio.create_task(
            self._consume(login, question.text, conversation, progress, output)
        )
        try:
            outcome = await self._outcome(running, login, progress)
            try:
                message_ids = await output.finish(progress.text, outcome)
            except Exception:
                log.exception("could not deliver answer %s", answer_id)
                message_ids = []
                outcome = Outcome(AnswerStatus.FAILED, Note.INTERNAL, "delivery failed")
            await self._answers.finish(
                answer_id,
                outcome.status,
                chars=len(progress.text),
                bot_message_ids=message_ids,
                error_kind=outcome.note.value if outcome.note is not Note.NONE else None,
                error_text=outcome.detail or None,
                conversation=self._conversation_update(record, progress),
            )
        finally:
            del self.running[answer_id]
            if not self.running:
                self._idle.set()
        return outcome

    @staticmethod
    def _conversation_update(
        record: ConversationRecord, progress: _Progress
    ) -> ConversationUpdate | None:
        if progress.conversation is None:
            return None
        return ConversationUpdate(
            conversation_id=record.id,
            upstream_chat_id=progress.conversation.chat_id,
            token_fingerprint=progress.conversation.token_fingerprint,
            title=progress.title or None,
        )

    async def _consume(
        self,
        login: ActiveLogin,
        text: str,
        conversation: Conversation | None,
        progress: _Progress,
        output: AnswerOutput,
    ) -> None:
        async for event in self._client.stream(login.auth, text, conversation):
            if isinstance(event, TextDelta):
                progress.text = event.text
                if progress.first_text_at is None:
                    progress.first_text_at = time.monotonic()
                output.update(event.text)
            elif isinstance(event, ConversationStarted):
                progress.conversation = event.conversation
            elif isinstance(event, TitleGenerated):
                progress.title = event.title
            elif isinstance(event, Finished):
                progress.text = event.text
            if output.gone:
                raise _Unreachable

    async def _outcome(
        self, running: RunningAnswer, login: ActiveLogin, progress: _Progress
    ) -> Outcome:
        assert running.task is not None
        try:
            await asyncio.shield(running.task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                running.stop(Note.RESTART)  # our own task is being cancelled: stop upstream too
                await asyncio.gather(running.task, return_exceptions=True)
                raise
            await asyncio.gather(running.task, return_exceptions=True)
            reason = running.stop_reason or Note.STOPPED
            status = AnswerStatus.STOPPED if reason is Note.STOPPED else AnswerStatus.INTERRUPTED
            return Outcome(status, reason)
        except _Unreachable:
            return Outcome(AnswerStatus.FAILED, Note.INTERNAL, "user unreachable")
        except (AuthRejected, SignatureRejected) as exc:
            self._keep_partial(progress, exc)
            self.stats.last_upstream_error = exc.message
            if await self._logins.rejected(login):
                await self._notifier.login_problem(Note.LOGIN_EXPIRED, login.auth.fingerprint)
            return Outcome(AnswerStatus.FAILED, Note.LOGIN_EXPIRED, exc.message)
        except RateLimited as exc:
            self._keep_partial(progress, exc)
            self.stats.last_upstream_error = exc.message
            return Outcome(AnswerStatus.FAILED, Note.UPSTREAM_BUSY, exc.message, exc.retry_after)
        except HailuoError as exc:
            self._keep_partial(progress, exc)
            self.stats.last_upstream_error = exc.message
            log.warning("answer %s failed: %s", running.answer_id, exc.message)
            if exc.kind == "interrupted":
                return Outcome(AnswerStatus.INTERRUPTED, Note.INTERRUPTED, exc.message)
            note = Note.UPSTREAM_DOWN if exc.kind == "unavailable" else Note.UPSTREAM_ERROR
            return Outcome(AnswerStatus.FAILED, note, exc.message)
        except Exception as exc:
            log.exception("answer %s failed unexpectedly", running.answer_id)
            return Outcome(AnswerStatus.FAILED, Note.INTERNAL, type(exc).__name__)
        await self._logins.worked(login)
        self.stats.last_success_at = time.time()
        if not progress.text.strip():
            return Outcome(AnswerStatus.DONE, Note.EMPTY)
        return Outcome(AnswerStatus.DONE)

    @staticmethod
    def _keep_partial(progress: _Progress, exc: HailuoError) -> None:
        if len(exc.partial_text) > len(progress.text):
            progress.text = exc.partial_text
        if progress.conversation is None and exc.conversation is not None:
            progress.conversation = exc.conversation

    # --- stopping -------------------------------------------------------------------------------

    def stop(self, answer_id: int) -> RunningAnswer | None:
        running = self.running.get(answer_id)
        if running is not None:
            running.stop()
        return running

    def find(self, chat_id: int, thread_id: int, user_id: int | None = None) -> list[RunningAnswer]:
        return [
            running
            for running in self.running.values()
            if running.question.chat_id == chat_id
            and running.question.thread_id == thread_id
            and (user_id is None or running.question.key.user_id in (0, user_id))
        ]

    async def shutdown(self, grace: float) -> None:
        """Let answers in flight finish for `grace` seconds, then interrupt the rest."""
        self._closing = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._idle.wait()
        for running in list(self.running.values()):
            running.stop(Note.RESTART)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_DELIVERY_SECONDS):
                await self._idle.wait()


class _Unreachable(Exception):
    """The front end can no longer reach the user: stop asking upstream."""
