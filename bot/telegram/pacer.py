"""One scheduler for every call that puts text in a chat, keeping the bot within Telegram's limits.

Limits (Telegram's bot FAQ): about one message per second per chat, twenty per minute per group,
thirty per second for the whole bot. A stream asks for a permit *before* it picks the text to send,
so the text it sends is the newest one (frames coalesce while it waits). Permits go to the most
urgent waiter first — a new answer's first frame and final messages before intermediate frames —
and, within a class, to whoever has waited longest, which makes streams take turns.

Every limit counts calls when they *end*, and calls still in flight count too: a call that
reaches Telegram within some second either was still running or had ended within that second
when a later one was granted. So however the network or the event loop delays requests, Telegram
never sees more than the limit in any window.

With several instances, a `SharedBudget` (Redis, in `bot.cluster`) keeps the same books for all
of them: a permit this process would grant is also taken there, and given back when the call ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from bot.lifecycle import BackgroundLoop, stop_tasks

log = logging.getLogger(__name__)

# The chat whose permit the current task holds, so the request middleware does not ask twice.
held_permit: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "held_permit", default=None
)


# Across instances, an urgent call counts as having waited this much longer than it has.
URGENT_HEAD_START = 60.0


class Priority(enum.IntEnum):
    URGENT = 0  # first frame of an answer, final messages, notices to admins
    NOTICE = 1  # replies to commands and refusals: behind answers, ahead of their frames
    FRAME = 2  # intermediate streaming frames: coalesced, may wait


@dataclass(frozen=True, slots=True)
class PacingLimits:
    global_per_second: float = 29.0
    chat_interval: float = 1.0
    group_per_minute: float = 19.0


@dataclass(frozen=True, slots=True)
class SharedVerdict:
    granted: bool
    chat_wait: float = 0.0  # this chat may be written to again in this many seconds
    global_wait: float = 0.0  # the bot as a whole may make a call again in this many seconds


class SharedBudget(Protocol):
    """Limits kept across instances. Each pacer picks its own most deserving waiter; when the
    bot-wide budget is contended, the shared books give the permit to the instance whose
    candidate has waited longest (`waited`, urgent calls counting as older)."""

    async def take(self, chat_id: int, waited: float) -> SharedVerdict: ...

    async def give_back(self, chat_id: int) -> None: ...

    async def penalize(self, chat_id: int, retry_after: float) -> None: ...


@dataclass
class _ChatState:
    is_group: bool
    next_free: float = 0.0
    busy: bool = False
    group_stamps: deque[float] = field(default_factory=deque)


@dataclass(eq=False)
class _Waiter:
    chat_id: int
    priority: Priority
    seq: int
    future: asyncio.Future[None]
    since: float  # when it started waiting (the pacer's clock)


class Pacer:
    def __init__(
        self,
        limits: PacingLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedBudget | None = None,
    ) -> None:
        self.limits = limits or PacingLimits()
        self._clock = clock
        self._shared = shared
        self._global_hold_until = float("-inf")  # what the shared budget last said
        self._releases: set[asyncio.Task[None]] = set()
        self._chats: dict[int, _ChatState] = {}
        self._queues: tuple[dict[int, _Waiter], ...] = tuple({} for _ in Priority)
        self._global_stamps: deque[float] = deque()  # when recent calls ended
        self._in_flight = 0
        self._last_grant = float("-inf")
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._loop: BackgroundLoop | None = None
        self.granted = 0
        self.penalties = 0

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._queues)

    @property
    def busy(self) -> bool:
        """Calls are waiting for permits, or half the bot's budget is in flight: the time to
        drop what is only cosmetic (a typing indicator)."""
        return self.waiting > 0 or self._in_flight * 2 >= self.limits.global_per_second

    async def acquire(self, chat_id: int, priority: Priority = Priority.URGENT) -> None:
        """Wait for a permit to update `chat_id`; follow with `release` when the call is done."""
        self._ensure_running()
        waiter = _Waiter(
            chat_id,
            priority,
            next(self._seq),
            asyncio.get_running_loop().create_future(),
            self._clock(),
        )
        self._queues[priority][waiter.seq] = waiter
        self._wakeup.set()
        try:
            await waiter.future
        except asyncio.CancelledError:
            self._queues[priority].pop(waiter.seq, None)
            if waiter.future.done() and not waiter.future.cancelled():
                self.release(chat_id)  # granted just as we were cancelled: hand it back
            raise

    @asynccontextmanager
    async def permit(self, chat_id: int, priority: Priority) -> AsyncIterator[None]:
        await self.acquire(chat_id, priority)
        token = held_permit.set(chat_id)
        try:
            yield
        finally:
            held_permit.reset(token)
            self.release(chat_id)

    def release(self, chat_id: int) -> None:
        state = self._chats.get(chat_id)
        if state is None or not state.busy:
            return
        if self._shared is not None:
            # The chat stays busy here until the shared books have the call's end: a permit
            # taken before that would find the chat still in flight there.
            task = asyncio.get_running_loop().create_task(self._release_shared(chat_id))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)
            return
        self._release_local(state)

    async def _release_shared(self, chat_id: int) -> None:
        assert self._shared is not None
        try:
            await self._shared.give_back(chat_id)
        finally:
            state = self._chats.get(chat_id)
            if state is not None and state.busy:
                self._release_local(state)

    def _release_local(self, state: _ChatState) -> None:
        now = self._clock()
        state.busy = False
        state.next_free = max(state.next_free, now + self.limits.chat_interval)
        if state.is_group:
            state.group_stamps.append(now)
        self._global_stamps.append(now)
        self._in_flight -= 1
        self._wakeup.set()

    def penalize(self, chat_id: int, retry_after: float) -> None:
        """Telegram said 429 for this chat: nothing goes to it until retry_after has passed."""
        self.penalties += 1
        state = self._state(chat_id)
        state.next_free = max(state.next_free, self._clock() + retry_after)
        log.warning("Telegram asked to wait %.0f s before writing to chat %s", retry_after, chat_id)
        if self._shared is not None:
            task = asyncio.get_running_loop().create_task(
                self._shared.penalize(chat_id, retry_after)
            )
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)
        self._wakeup.set()

    async def close(self) -> None:
        await stop_tasks(list(self._releases), "recording the end of Telegram calls", grace=5.0)
        if self._loop is not None:
            loop, self._loop = self._loop, None
            self._wakeup.set()  # it checks whether to go on when it wakes
            await loop.stop()

    def _state(self, chat_id: int) -> _ChatState:
        state = self._chats.get(chat_id)
        if state is None:
            state = self._chats[chat_id] = _ChatState(is_group=chat_id < 0)
        return state

    def _ensure_running(self) -> None:
        if self._loop is None or self._loop.ended:  # (re)started on demand, e.g. after a failure
            loop = self._loop = BackgroundLoop("pacer")
            loop.start(lambda: self._run(loop))

    def _chat_ready_at(self, state: _ChatState, now: float) -> float:
        if state.busy:
            return float("inf")
        ready = state.next_free
        if state.is_group:
            window = 60.0
            stamps = state.group_stamps
            while stamps and stamps[0] <= now - window:
                stamps.popleft()
            if len(stamps) >= self.limits.group_per_minute:
                ready = max(ready, stamps[0] + window)
            if stamps:
                ready = max(ready, stamps[-1] + window / self.limits.group_per_minute)
        return ready

    def _global_ready_at(self, now: float) -> float:
        stamps = self._global_stamps
        while stamps and stamps[0] <= now - 1.0:
            stamps.popleft()
        ready = max(
            now, self._last_grant + 1.0 / self.limits.global_per_second, self._global_hold_until
        )
        if self._in_flight + len(stamps) >= self.limits.global_per_second:
            # Full: the next permit comes when a recent call leaves the window (or one ends).
            ready = max(ready, stamps[0] + 1.0) if stamps else float("inf")
        return ready

    def _forget_idle_chats(self, now: float) -> None:
        """Chats not written to for a minute need no state: keep memory flat over time."""
        stale = [
            chat_id
            for chat_id, state in self._chats.items()
            if not state.busy and state.next_free < now - 60 and not state.group_stamps
        ]
        for chat_id in stale:
            del self._chats[chat_id]

    async def _run(self, loop: BackgroundLoop) -> None:
        next_cleanup = self._clock() + 60
        while loop.running:
            self._wakeup.clear()
            if self._clock() > next_cleanup:
                self._forget_idle_chats(self._clock())
                next_cleanup = self._clock() + 60
            delay = await self._grant_what_we_can()
            if delay is None:
                await self._wakeup.wait()
                continue
            try:
                async with asyncio.timeout(delay):
                    await self._wakeup.wait()
            except TimeoutError:
                pass

    async def _grant_what_we_can(self) -> float | None:
        """Grant permits now; return how long until the next may be possible (None: no waiters)."""
        while True:
            now = self._clock()
            global_ready = self._global_ready_at(now)
            earliest_chat = float("inf")
            chosen: _Waiter | None = None
            for queue in self._queues:
                for seq, waiter in list(queue.items()):
                    if waiter.future.done():
                        del queue[seq]
                        continue
                    ready = self._chat_ready_at(self._state(waiter.chat_id), now)
                    if ready <= now:
                        chosen = waiter
                        break
                    earliest_chat = min(earliest_chat, ready)
                if chosen is not None:
                    break
            if chosen is None:
                if earliest_chat == float("inf"):
                    return None if not self.waiting else 60.0
                return max(0.0, earliest_chat - now)
            if global_ready > now:
                # inf: everything is in flight; a release will wake us.
                return None if global_ready == float("inf") else max(0.0, global_ready - now)
            if self._shared is not None and not await self._take_shared(chosen):
                continue
            self._grant(chosen, self._clock())

    async def _take_shared(self, waiter: _Waiter) -> bool:
        """The shared books agree (they count the other instances' calls too)."""
        assert self._shared is not None
        waited = self._clock() - waiter.since
        if waiter.priority is Priority.URGENT:
            waited += URGENT_HEAD_START
        verdict = await self._shared.take(waiter.chat_id, waited)
        if not verdict.granted:
            now = self._clock()
            state = self._state(waiter.chat_id)
            state.next_free = max(state.next_free, now + verdict.chat_wait)
            self._global_hold_until = max(self._global_hold_until, now + verdict.global_wait)
            return False
        if waiter.future.done():  # cancelled while we asked: hand the permit back
            await self._shared.give_back(waiter.chat_id)
            return False
        return True

    def _grant(self, waiter: _Waiter, now: float) -> None:
        del self._queues[waiter.priority][waiter.seq]
        state = self._state(waiter.chat_id)
        state.busy = True
        self._in_flight += 1
        self._last_grant = now
        self.granted += 1
        waiter.future.set_result(None)
