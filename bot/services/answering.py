"""Answer a question in a conversation: the one place where an upstream, storage and a front end
meet.

The upstream is reached through `bot.upstream.Upstream` (Hailuo, MiniMax Agent, ...), the front
end (Telegram) only through the small `AnswerOutput` protocol, so this module knows nothing of
Telegram, of SSE or of signatures, and the adapters know nothing of storage or Telegram.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bot.lifecycle import stop_tasks
from bot.logs import log_failure, redact, scrub_credentials
from bot.services.logins import ActiveLogin, LoginService
from bot.services.queue import ConversationQueue, LocalConversationQueue, OnQueued, Ticket
from bot.services.upstreams import Endpoint, Failover, FailoverReason, KeyLogins, LoginSource
from bot.storage.answers import FINAL_STATUSES, AnswerStore, ConversationUpdate
from bot.storage.chat_settings import ChatSettings, ChatSettingsStore
from bot.storage.conversations import ConversationKey, ConversationRecord, ConversationStore
from bot.storage.database import Database
from bot.storage.history import HistoryStore, NewTurn
from bot.storage.models import AnswerStatus
from bot.storage.retry import through_outage
from bot.upstream import (
    AuthRejected,
    Conversation,
    ConversationStarted,
    Finished,
    RateLimited,
    ReasoningDelta,
    SignatureRejected,
    TextDelta,
    TitleGenerated,
    Turn,
    Upstream,
    UpstreamEvent,
    UpstreamFailure,
)

log = logging.getLogger(__name__)

SHUTDOWN_DELIVERY_SECONDS = 15.0
RENEW_BEFORE = timedelta(days=1)
FENCE_SECONDS = 10.0
FENCE_POLL_SECONDS = 0.5
RENEW_RETRY = 3600.0
_NOWHERE = Conversation(chat_id="", token_fingerprint="")
MAX_DETAIL_CHARS = 300  # an upstream's words in a note, a log line or /status


class Note(enum.Enum):
    """What the user is told under (or instead of) an answer."""

    NONE = "none"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"
    RESTART = "restart"
    EMPTY = "empty"
    NO_LOGIN = "no_login"
    LOGIN_EXPIRED = "login_expired"
    KEY_REJECTED = "key_rejected"
    UPSTREAM_BUSY = "upstream_busy"
    UPSTREAM_DOWN = "upstream_down"
    UPSTREAM_ERROR = "upstream_error"
    INTERNAL = "internal"
    TRUNCATED = "truncated"


@dataclass(frozen=True, slots=True)
class Outcome:
    status: AnswerStatus
    note: Note = Note.NONE
    detail: str = ""
    retry_after: float | None = None
    switched_to: str | None = None  # UPSTREAM changed: this answer started a new conversation
    # The fallback answered instead of the primary (its name), and why.
    answered_by: str | None = None
    fallback_reason: FailoverReason | None = None
    # Set on the primary's failures that the fallback may answer instead of.
    failover: FailoverReason | None = None


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

    def think(self, reasoning: str) -> None:
        """The model's reasoning so far (never part of the answer); must not block."""

    async def finish(self, markdown: str, outcome: Outcome) -> list[int]:
        """Show the final state; return the ids of the messages that hold it."""

    @property
    def gone(self) -> bool:
        """True when the user can no longer be reached (blocked the bot, left the chat)."""


class AdminNotifier(Protocol):
    async def login_problem(self, note: Note, fingerprint: str | None) -> None: ...

    async def failover(self, primary: str, fallback: str, reason: FailoverReason) -> None:
        """The fallback answers from now on (once per episode)."""


class StopRelay(Protocol):
    """Carries stop requests to the instance that streams the answer (several instances)."""

    async def request_stop(self, answer_id: int) -> None: ...

    async def instance_running(self, instance_id: str) -> bool: ...


class AnswerMetrics(Protocol):
    """What the service reports as it answers (Prometheus in production)."""

    def answer_started(self) -> None: ...

    def answer_finished(self, status: str, seconds: float) -> None: ...

    def first_text(self, seconds: float) -> None: ...

    def upstream_error(self, kind: str) -> None: ...

    def fallback_answer(self, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Question:
    key: ConversationKey
    text: str  # exactly what goes upstream (and into the stored history)
    chat_id: int
    thread_id: int
    user_id: int
    message_id: int


@dataclass(frozen=True, slots=True)
class StopTarget:
    """An answer that can still be stopped, wherever it streams."""

    answer_id: int
    chat_id: int
    user_id: int | None


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
    truncated: bool = False
    reasoning: str = ""
    switched_to: str | None = None  # UPSTREAM changed: this answer starts afresh there
    upstream: str = ""  # the upstream that answers (the fallback's after a failover)

    def restart(self) -> None:
        """The primary failed before any text: the fallback starts from nothing (and the
        chat keeps the web conversation it had, not one the failed attempt opened)."""
        self.reasoning = ""
        self.truncated = False
        self.switched_to = None
        self.conversation = None
        self.title = ""


@dataclass(frozen=True, slots=True)
class _Request:
    text: str
    conversation: Conversation | None
    history: list[Turn]
    model: str | None


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
        client: Upstream,
        notifier: AdminNotifier,
        *,
        queue: ConversationQueue | None = None,
        instance_id: str | None = None,
        stop_relay: StopRelay | None = None,
        metrics: AnswerMetrics | None = None,
        max_answer_chars: int = 64_000,
        queue_depth: int = 10,
        logins: LoginSource | None = None,
        fallback: Endpoint | None = None,
        history_chars: int = 24_000,
    ) -> None:
        self._conversations = ConversationStore(database)
        self._answers = AnswerStore(database)
        self._history = HistoryStore(database)
        self._chat_settings = ChatSettingsStore(database)
        self._logins: LoginSource = logins or LoginService(database, client.name)
        self._primary = Endpoint(client, self._logins)
        self._fallback = fallback
        self.failover = Failover()
        self._history_chars = history_chars
        self._notifier = notifier
        self._queue: ConversationQueue = queue or LocalConversationQueue()
        self._instance_id = instance_id
        self._stop_relay = stop_relay
        self._metrics = metrics
        self._max_answer_chars = max_answer_chars
        self._queue_depth = queue_depth
        self._jobs: set[asyncio.Task[None]] = set()
        self._notices: set[asyncio.Task[None]] = set()
        self.running: dict[int, RunningAnswer] = {}
        self.stats = AnswerStats()
        self._closing = False
        self._no_login_reported = False
        self._renewal_tried: dict[int, float] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    async def schedule(
        self,
        key: ConversationKey,
        order: int,
        job: Callable[[], Awaitable[None]],
        on_queued: OnQueued | None = None,
        *,
        first: Callable[[], Awaitable[None]] | None = None,
    ) -> bool:
        """Take the conversation's next place for `job` (ordered by `order`, the message id) and
        return at once: `job` runs in a background task when its turn comes, holding the
        conversation. A handler that calls this is done in milliseconds, so the update it holds
        (and any lock on its chat) is free long before the answer is. False (and nothing
        queued) when the conversation already has `queue_depth` requests waiting.

        `first` runs once the place is taken (so concurrent handlers keep their order) and
        before the job is started; if it fails, the place is given up and its error raised."""
        name = conversation_name(key)
        if self._queue.waiting(name) >= self._queue_depth:
            return False
        ticket = await self._queue.join(name, order)
        if first is not None:
            try:
                await first()
            except BaseException:
                self._queue.discard(ticket)
                raise
        task = asyncio.create_task(self._in_turn(ticket, job, on_queued))
        self._jobs.add(task)
        task.add_done_callback(lambda done: self._job_done(done, ticket))
        return True

    async def _in_turn(
        self, ticket: Ticket, job: Callable[[], Awaitable[None]], on_queued: OnQueued | None
    ) -> None:
        async with self._queue.turn(ticket, on_queued):
            await job()

    def _job_done(self, task: asyncio.Task[None], ticket: Ticket) -> None:
        self._jobs.discard(task)
        self._queue.discard(ticket)  # cancelled before it even started: give the place up
        log_failure(task, "a conversation job", log)

    async def enqueue(self, question: Question) -> int:
        """Record the accepted question (its answer row, `queued`); returns the answer's id."""
        return await through_outage(
            lambda: self._answers.enqueue(
                question.key,
                chat_id=question.chat_id,
                thread_id=question.thread_id,
                user_id=question.user_id,
                user_message_id=question.message_id,
                instance_id=self._instance_id,
            ),
            "recording a question",
        )

    async def answer(
        self, question: Question, answer_id: int, make_output: Callable[[int], AnswerOutput]
    ) -> Outcome | Refusal:
        """Answer the question recorded as `answer_id` now (the caller holds the conversation's
        turn), or say why not (the row is closed either way)."""
        try:
            return await self._answer(question, answer_id, make_output)
        except Exception:
            with contextlib.suppress(Exception):  # best effort: the row must not stay queued
                await self._answers.close(answer_id, AnswerStatus.FAILED, Note.INTERNAL.value)
            raise

    async def _answer(
        self, question: Question, answer_id: int, make_output: Callable[[int], AnswerOutput]
    ) -> Outcome | Refusal:
        if self._closing:
            return await self.refuse(answer_id, Note.RESTART)
        usable = await self._primary_login()
        if isinstance(usable, Note) and self._fallback is None:
            return await self.refuse(answer_id, usable)
        login = None if isinstance(usable, Note) else usable  # None: the fallback answers
        if self._stop_relay is not None:
            await self._fence(question.key, question.message_id)
        record = await through_outage(
            lambda: self._conversations.get_or_create(question.key), "reading a conversation"
        )
        chat = await through_outage(
            lambda: self._chat_settings.get(question.chat_id), "reading the chat's settings"
        )
        output = make_output(answer_id)
        return await self._run(question, record, chat, login, answer_id, output)

    async def _primary_login(self) -> ActiveLogin | Note:
        """The primary's usable login, or why there is none."""
        login = await through_outage(self._logins.current, "reading the login")
        if login is None:
            # With a fallback, admins hear of it once as a failover (which says to /login).
            if not self._no_login_reported and self._fallback is None:
                self._no_login_reported = True
                await self._notifier.login_problem(Note.NO_LOGIN, None)
            return Note.NO_LOGIN
        if login.record.invalid_at is not None:
            return Note.LOGIN_EXPIRED  # admins were told when it was rejected
        self._no_login_reported = False
        return await self._renew_if_expiring(login)

    async def refuse(self, answer_id: int, note: Note) -> Refusal:
        status = AnswerStatus.INTERRUPTED if note is Note.RESTART else AnswerStatus.FAILED
        await through_outage(
            lambda: self._answers.close(answer_id, status, note.value), "closing a refused answer"
        )
        return Refusal(note)

    async def title(self, key: ConversationKey) -> str:
        """The conversation's title (in its turn, so answers asked before have been saved); read
        back from the upstream when it titled the conversation after we saved it."""
        record = await self._conversations.get(key)
        if record is None:
            return ""
        if record.title or not record.upstream_chat_id or record.upstream != self._primary.name:
            return record.title
        login = await self._logins.current()
        if login is None:
            return ""
        try:
            return await self._primary.client.title(login.auth, self._continued(record) or _NOWHERE)
        except UpstreamFailure as exc:
            log.info("could not read the title of conversation %s: %s", record.id, exc.message)
            return ""

    async def _fence(self, key: ConversationKey, message_id: int) -> None:
        """Several instances: the shared queue gave us the turn, but after a Redis outage it may
        have taken it from an instance that still streams this conversation (it looked dead).
        That instance gives up within its lease; wait for its answer to be closed (a bounded
        wait: a crashed instance never closes it)."""
        assert self._stop_relay is not None
        deadline = time.monotonic() + FENCE_SECONDS
        told = False
        while await self._streaming_elsewhere(key, message_id):
            if time.monotonic() >= deadline:
                log.warning("conversation %s: an answer elsewhere is still open; going on", key)
                return
            if not told:
                told = True
                log.info("conversation %s: waiting for another instance's answer to close", key)
            await asyncio.sleep(FENCE_POLL_SECONDS)

    async def _streaming_elsewhere(self, key: ConversationKey, message_id: int) -> bool:
        """Another running instance has the answer to an earlier question of this conversation
        open (one that is not running any more left it to its restart or the sweep)."""
        assert self._stop_relay is not None
        try:
            earlier = await self._answers.unfinished_elsewhere(key, self._instance_id, message_id)
            for instance in earlier:
                if await self._stop_relay.instance_running(instance):
                    return True
        except Exception as exc:  # Redis or the database away: the fence must not stop answers
            log.info("conversation %s: cannot check other instances (%s)", key, type(exc).__name__)
        return False

    async def _renew_if_expiring(self, login: ActiveLogin) -> ActiveLogin:
        """A token that expires within a day is renewed (the upstream's probe does it), at most
        once an hour per login; a failed renewal leaves the login as it is."""
        expires = login.auth.expires_at
        now = time.monotonic()
        if expires is None or expires - datetime.now(UTC) > RENEW_BEFORE:
            return login
        if now - self._renewal_tried.get(login.record.id, -RENEW_RETRY) < RENEW_RETRY:
            return login
        self._renewal_tried[login.record.id] = now
        try:
            return await self._logins.renewed(login, await self._primary.client.probe(login.auth))
        except UpstreamFailure as exc:
            log.warning("could not renew login %s: %s", login.auth.fingerprint, exc.message)
            return login

    def _continued(self, record: ConversationRecord) -> Conversation | None:
        """The upstream conversation this chat continues, if it has one."""
        if not record.upstream_chat_id:
            return None
        return Conversation(
            chat_id=record.upstream_chat_id,
            token_fingerprint=record.token_fingerprint,
            character_id=record.character_id,
            upstream=record.upstream or "hailuo",
        )

    async def reset(self, key: ConversationKey) -> bool:
        """Start a fresh conversation (in its turn, between the questions around it)."""
        return await self._conversations.reset(key)

    async def forget(self, chat_id: int) -> int:
        """/forget: the chat's stored history goes, every conversation of the chat starts
        afresh, and answers to questions asked before it are not stored when they end either.
        Returns the number of exchanges deleted."""
        return await self._history.forget_chat(chat_id)

    async def purge_history(self, keep_days: int) -> int:
        """Retention: exchanges older than `keep_days` are deleted."""
        return await self._history.purge(datetime.now(UTC) - timedelta(days=keep_days))

    @property
    def logins(self) -> LoginSource:
        """Where the primary upstream's login comes from."""
        return self._logins

    @property
    def fallback(self) -> Endpoint | None:
        return self._fallback

    async def _run(
        self,
        question: Question,
        record: ConversationRecord,
        chat: ChatSettings,
        login: ActiveLogin | None,
        answer_id: int,
        output: AnswerOutput,
    ) -> Outcome:
        running = RunningAnswer(answer_id, question)
        self.running[answer_id] = running
        self._idle.clear()
        self.stats.started += 1
        if self._metrics is not None:
            self._metrics.answer_started()
        started = time.monotonic()
        progress = _Progress()
        output.waiting()
        outcome: Outcome | None = None
        try:
            outcome = await self._through_upstreams(running, record, chat, login, progress, output)
            if progress.switched_to is not None:
                outcome = dataclasses.replace(outcome, switched_to=progress.switched_to)
            try:
                message_ids = await output.finish(progress.text, outcome)
            except Exception:
                log.exception("could not deliver answer %s", answer_id)
                message_ids = []
                outcome = Outcome(AnswerStatus.FAILED, Note.INTERNAL, "delivery failed")
            final = outcome
            try:
                await through_outage(
                    lambda: self._answers.finish(
                        answer_id,
                        final.status,
                        chars=len(progress.text),
                        bot_message_ids=message_ids,
                        error_kind=final.note.value if final.note is not Note.NONE else None,
                        error_text=final.detail or None,
                        conversation=self._conversation_update(record, progress),
                        turn=NewTurn(question.text, progress.text, progress.upstream)
                        if progress.text.strip()
                        else None,
                    ),
                    f"saving answer {answer_id}",
                )
            except Exception:
                log.exception("could not save answer %s; closing its row", answer_id)
                await through_outage(
                    lambda: self._answers.close(answer_id, final.status, "storage"),
                    f"closing answer {answer_id}",
                )
        finally:
            del self.running[answer_id]
            if not self.running:
                self._idle.set()
            if self._metrics is not None:
                # Counted however the answer ended (the process being stopped included).
                status = outcome.status if outcome is not None else AnswerStatus.INTERRUPTED
                self._metrics.answer_finished(status.value, time.monotonic() - started)
                if progress.first_text_at is not None:
                    self._metrics.first_text(progress.first_text_at - started)
        return outcome

    async def _through_upstreams(
        self,
        running: RunningAnswer,
        record: ConversationRecord,
        chat: ChatSettings,
        login: ActiveLogin | None,
        progress: _Progress,
        output: AnswerOutput,
    ) -> Outcome:
        """The primary answers; the fallback instead when the primary has no usable login, is
        resting after an outage, or fails before any text was shown."""
        fallback = self._fallback
        reason = FailoverReason.LOGIN if login is None else None
        if login is not None and fallback is not None and self.failover.resting:
            reason = FailoverReason.OUTAGE
        if login is not None and reason is None:
            outcome = await self._attempt(
                running, self._primary, login, record, chat, progress, output
            )
            if outcome.status is AnswerStatus.DONE:
                self.failover.primary_worked()
            if (
                fallback is None
                or outcome.failover is None
                or progress.text.strip()
                or running.stop_reason is not None
            ):
                return outcome
            reason = outcome.failover
            log.info("answer %s: %s failed (%s)", running.answer_id, self._primary.name, reason)
            await self._fail_over(reason, outcome.retry_after)
            progress.restart()
        elif login is None:
            await self._fail_over(FailoverReason.LOGIN, None)
        assert fallback is not None
        assert reason is not None
        fallback_login = await fallback.logins.current()
        if fallback_login is None:
            return Outcome(AnswerStatus.FAILED, Note.NO_LOGIN)
        outcome = await self._attempt(
            running, fallback, fallback_login, record, chat, progress, output
        )
        if progress.text.strip():
            outcome = dataclasses.replace(
                outcome, answered_by=fallback.name, fallback_reason=reason
            )
            if self._metrics is not None:
                self._metrics.fallback_answer(reason.value)
        return outcome

    async def _fail_over(self, reason: FailoverReason, retry_after: float | None) -> None:
        assert self._fallback is not None
        if self.failover.primary_failed(reason, retry_after):
            log.warning(
                "%s cannot answer (%s): %s answers instead",
                self._primary.name,
                reason,
                self._fallback.name,
            )
            # In the background: the answer must not wait for admins' messages.
            notice = asyncio.create_task(
                self._notifier.failover(self._primary.name, self._fallback.name, reason)
            )
            self._notices.add(notice)
            notice.add_done_callback(self._notice_done)

    def _notice_done(self, task: asyncio.Task[None]) -> None:
        self._notices.discard(task)
        log_failure(task, "telling admins of a failover", log)

    async def _attempt(
        self,
        running: RunningAnswer,
        endpoint: Endpoint,
        login: ActiveLogin,
        record: ConversationRecord,
        chat: ChatSettings,
        progress: _Progress,
        output: AnswerOutput,
    ) -> Outcome:
        """One upstream's try at the answer."""
        conversation = self._continued(record) if endpoint.client.keeps_history else None
        if conversation is not None and conversation.upstream != endpoint.name:
            if endpoint is self._primary:
                # UPSTREAM changed since: a fresh conversation here, and the chat is told
                # (once: the row records the new upstream with this answer).
                progress.switched_to = endpoint.name
            conversation = None
        history: list[Turn] = []
        if not endpoint.client.keeps_history:
            stored = await through_outage(
                lambda: self._history.recent(record.id, self._history_chars),
                "reading the conversation's history",
            )
            history = [Turn(turn.question, turn.answer) for turn in stored]
        progress.upstream = endpoint.name
        if running.stop_reason is not None:  # stopped while the attempt was being prepared
            return self._stopped(running)
        request = _Request(
            running.question.text, conversation, history, chat.model_for(endpoint.name)
        )
        running.task = asyncio.create_task(
            self._consume(running, endpoint, login, request, progress, output)
        )
        return await self._outcome(running, endpoint, login, progress)

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
            upstream=progress.conversation.upstream,
        )

    async def _consume(
        self,
        running: RunningAnswer,
        endpoint: Endpoint,
        login: ActiveLogin,
        request: _Request,
        progress: _Progress,
        output: AnswerOutput,
    ) -> None:
        events = endpoint.client.stream(
            login.auth,
            request.text,
            request.conversation,
            history=request.history,
            model=request.model,
        )
        async with contextlib.aclosing(events):
            await self._read(running, events, progress, output)

    async def _read(
        self,
        running: RunningAnswer,
        events: AsyncGenerator[UpstreamEvent, None],
        progress: _Progress,
        output: AnswerOutput,
    ) -> None:
        async for event in events:
            if running.stop_reason is not None:
                return  # asked to stop: nothing more is shown
            if isinstance(event, TextDelta):
                progress.text = self._capped(event.text, progress)
                if progress.first_text_at is None:
                    progress.first_text_at = time.monotonic()
                output.update(progress.text)
            elif isinstance(event, ReasoningDelta):
                progress.reasoning = event.text[: self._max_answer_chars]
                output.think(progress.reasoning)
            elif isinstance(event, ConversationStarted):
                progress.conversation = event.conversation
            elif isinstance(event, TitleGenerated):
                progress.title = event.title
            elif isinstance(event, Finished):
                progress.text = self._capped(event.text, progress)
            if progress.truncated:
                return  # leaving closes the upstream request
            if output.gone:
                raise _Unreachable
            if running.stop_reason is not None:
                return  # asked to stop: even if the cancellation was swallowed below us

    async def _outcome(
        self, running: RunningAnswer, endpoint: Endpoint, login: ActiveLogin, progress: _Progress
    ) -> Outcome:
        assert running.task is not None
        try:
            await asyncio.shield(running.task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                running.stop(Note.RESTART)  # our own task is being cancelled: stop upstream too
                await stop_tasks([running.task], f"upstream stream of answer {running.answer_id}")
                raise
            await stop_tasks([running.task], f"upstream stream of answer {running.answer_id}")
            return self._stopped(running)
        except _Unreachable:
            return Outcome(AnswerStatus.FAILED, Note.INTERNAL, "user unreachable")
        except (AuthRejected, SignatureRejected) as exc:
            self._keep_partial(progress, exc)
            detail = self._upstream_failed(exc)
            outage = FailoverReason.OUTAGE
            if not await self._login_really_rejected(endpoint, login):
                return Outcome(AnswerStatus.FAILED, Note.UPSTREAM_ERROR, detail, failover=outage)
            keyed = isinstance(endpoint.logins, KeyLogins)
            note = Note.KEY_REJECTED if keyed else Note.LOGIN_EXPIRED
            # With a fallback, the failover notice tells admins (users still get answers).
            covered = endpoint is self._primary and self._fallback is not None
            if await endpoint.logins.rejected(login) and not covered:
                await self._notifier.login_problem(note, login.auth.fingerprint)
            return Outcome(AnswerStatus.FAILED, note, detail, failover=FailoverReason.LOGIN)
        except RateLimited as exc:
            self._keep_partial(progress, exc)
            detail = self._upstream_failed(exc)
            return Outcome(
                AnswerStatus.FAILED,
                Note.UPSTREAM_BUSY,
                detail,
                exc.retry_after,
                failover=FailoverReason.OUTAGE,
            )
        except UpstreamFailure as exc:
            self._keep_partial(progress, exc)
            detail = self._upstream_failed(exc)
            log.warning("answer %s failed: %s", running.answer_id, detail)
            # Down, changed, or cut before any text: another upstream may well answer.
            failover = None if exc.kind == "upstream" else FailoverReason.OUTAGE
            if exc.kind == "interrupted":
                return Outcome(
                    AnswerStatus.INTERRUPTED, Note.INTERRUPTED, detail, failover=failover
                )
            note = Note.UPSTREAM_DOWN if exc.kind == "unavailable" else Note.UPSTREAM_ERROR
            return Outcome(AnswerStatus.FAILED, note, detail, failover=failover)
        except Exception as exc:
            log.exception("answer %s failed unexpectedly", running.answer_id)
            return Outcome(AnswerStatus.FAILED, Note.INTERNAL, type(exc).__name__)
        if running.stop_reason is not None:
            return self._stopped(running)
        await endpoint.logins.worked(login)
        self.stats.last_success_at = time.time()
        if not progress.text.strip():
            return Outcome(AnswerStatus.DONE, Note.EMPTY)
        if progress.truncated:
            log.info("answer %s cut at %d characters", running.answer_id, len(progress.text))
            return Outcome(AnswerStatus.DONE, Note.TRUNCATED)
        return Outcome(AnswerStatus.DONE)

    def _capped(self, text: str, progress: _Progress) -> str:
        """The answer, cut at MAX_ANSWER_CHARS (at a line or word end near it)."""
        limit = self._max_answer_chars
        if len(text) <= limit:
            return text
        progress.truncated = True
        # Never behind what the user has seen already, nor far before the limit.
        floor = max(int(limit * 0.9), min(len(progress.text), limit))
        cut = max(text.rfind("\n", 0, limit), text.rfind(" ", 0, limit))
        return text[: cut if cut >= floor else limit]

    async def _login_really_rejected(self, endpoint: Endpoint, login: ActiveLogin) -> bool:
        """One refusal can be a blip (a proxy, a deploy upstream): where the upstream has a
        cheap authenticated call, the login is declared dead only if that refuses it too."""
        if not endpoint.client.probes_login:
            return True
        try:
            checked = await endpoint.client.probe(login.auth)
        except (AuthRejected, SignatureRejected):
            return True
        except UpstreamFailure as exc:
            log.info("could not confirm the login refusal (%s); keeping the login", exc.message)
            return False
        log.info("login %s still works: the refusal was a blip", login.auth.fingerprint)
        try:  # the probe may have renewed a token close to expiry: keep the new one
            await endpoint.logins.renewed(login, checked)
        except Exception as exc:
            log.warning("could not store the renewed login: %s", type(exc).__name__)
        return False

    @staticmethod
    def _stopped(running: RunningAnswer) -> Outcome:
        reason = running.stop_reason or Note.STOPPED
        status = AnswerStatus.STOPPED if reason is Note.STOPPED else AnswerStatus.INTERRUPTED
        return Outcome(status, reason)

    def _upstream_failed(self, exc: UpstreamFailure) -> str:
        """Count the failure; return the upstream's words, short enough for any message."""
        detail = shorten(redact(scrub_credentials(exc.message)), MAX_DETAIL_CHARS)
        self.stats.last_upstream_error = detail
        if self._metrics is not None:
            self._metrics.upstream_error(exc.kind)
        return detail

    def _keep_partial(self, progress: _Progress, exc: UpstreamFailure) -> None:
        if len(exc.partial_text) > len(progress.text):
            progress.text = self._capped(exc.partial_text, progress)
        if progress.conversation is None and exc.conversation is not None:
            progress.conversation = exc.conversation

    # --- stopping -------------------------------------------------------------------------------

    def stop_all_here(self) -> None:
        """This instance lost its place among the others (Redis gone past its lease): its
        answers stop, marked interrupted, before another instance may take the turn over."""
        for running in list(self.running.values()):
            running.stop(Note.INTERRUPTED)

    def stop_here(self, answer_id: int) -> bool:
        """Stop an answer if this process streams it."""
        running = self.running.get(answer_id)
        if running is not None:
            running.stop()
        return running is not None

    async def stop_target(self, answer_id: int) -> StopTarget | None:
        """The answer if it can still be stopped: streaming here, or (several instances)
        unfinished in the database."""
        running = self.running.get(answer_id)
        if running is not None:
            question = running.question
            return StopTarget(answer_id, question.chat_id, question.user_id)
        if self._stop_relay is None:
            return None
        record = await self._answers.get(answer_id)
        if record is None or record.status in FINAL_STATUSES:
            return None
        return StopTarget(record.id, record.chat_id, record.user_id)

    async def stop(self, answer_id: int) -> None:
        """Stop the answer here, or ask the instance that streams it."""
        if not self.stop_here(answer_id) and self._stop_relay is not None:
            await self._stop_relay.request_stop(answer_id)

    async def stop_in(self, chat_id: int, thread_id: int, user_id: int | None) -> int:
        """Stop what is being written in a chat's topic: the answers `user_id` asked for (None:
        all of them, for a group admin); returns how many answers were asked to stop."""
        targets = {
            running.answer_id
            for running in self.running.values()
            if running.question.chat_id == chat_id
            and running.question.thread_id == thread_id
            and (user_id is None or running.question.user_id == user_id)
        }
        if self._stop_relay is not None:  # streaming on other instances
            targets.update(await self._answers.unfinished_in(chat_id, thread_id, user_id))
        for answer_id in targets:
            await self.stop(answer_id)
        return len(targets)

    async def shutdown(self, grace: float) -> None:
        """Let answers in flight finish for `grace` seconds, then interrupt the rest; questions
        still waiting for their turn are told to send again."""
        self._closing = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._idle.wait()
        for running in list(self.running.values()):
            running.stop(Note.RESTART)
        # Jobs still waiting (e.g. behind another instance's answer) are cancelled after that.
        await stop_tasks(list(self._jobs), "conversation jobs", grace=SHUTDOWN_DELIVERY_SECONDS)
        await stop_tasks(list(self._notices), "failover notices")


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def conversation_name(key: ConversationKey) -> str:
    """The conversation's name in a queue shared by every instance."""
    return f"{key.chat_id}:{key.thread_id}:{key.user_id}"


class _Unreachable(Exception):
    """The front end can no longer reach the user: stop asking upstream."""
