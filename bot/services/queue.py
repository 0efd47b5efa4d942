"""One answer at a time per conversation, in message order; different conversations never wait.

Taking a place (`join`) and waiting for the turn (`turn`) are separate steps: a handler joins
while it still holds the update, so places are taken in the order updates arrive, and then hands
the wait to a background task. `LocalConversationQueue` serves one process; the Redis queue in
`bot.cluster` has the same interface for several instances.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

OnQueued = Callable[[int], Awaitable[None]]
QUEUE_NOTICE_AFTER = 1.0


@dataclass(frozen=True, slots=True)
class Ticket:
    """A place in a conversation's queue: `order` is the message id, `id` unique everywhere."""

    key: str
    order: int
    id: str


class ConversationQueue(Protocol):
    async def join(self, key: str, order: int) -> Ticket:
        """Take a place; the turn comes in `order` among the places waiting."""

    def turn(
        self, ticket: Ticket, on_queued: OnQueued | None = None
    ) -> AbstractAsyncContextManager[None]:
        """Wait for the turn and hold the conversation; the place is given up on exit.

        `on_queued(position)` is called if the wait lasts longer than a second, so a question
        sent just as the previous answer is being saved gets no needless notice."""

    def discard(self, ticket: Ticket) -> None:
        """Give up a place that will never take its turn (safe to call more than once)."""

    def waiting(self, key: str) -> int:
        """Places waiting behind the holder (this process's view)."""


@dataclass
class _Slot:
    holder: str | None = None
    waiters: list[tuple[int, int, Ticket]] = field(default_factory=list)
    granted: dict[str, asyncio.Future[None]] = field(default_factory=dict)


class LocalConversationQueue:
    def __init__(self) -> None:
        self._slots: dict[str, _Slot] = {}
        self._seq = itertools.count()

    async def join(self, key: str, order: int) -> Ticket:
        seq = next(self._seq)
        ticket = Ticket(key, order, f"local:{seq}")
        slot = self._slots.setdefault(key, _Slot())
        slot.granted[ticket.id] = asyncio.get_running_loop().create_future()
        heapq.heappush(slot.waiters, (order, seq, ticket))
        self._promote(key, slot)
        return ticket

    @asynccontextmanager
    async def turn(self, ticket: Ticket, on_queued: OnQueued | None = None) -> AsyncIterator[None]:
        slot = self._slots.get(ticket.key)
        future = slot.granted.get(ticket.id) if slot is not None else None
        if slot is None or future is None:
            raise RuntimeError("this ticket is not in the queue")
        try:
            if not future.done() and on_queued is not None:
                done, _ = await asyncio.wait({future}, timeout=QUEUE_NOTICE_AFTER)
                if not done:
                    await on_queued(self._position(slot, ticket))
            await future
            yield
        finally:
            self.discard(ticket)

    def discard(self, ticket: Ticket) -> None:
        slot = self._slots.get(ticket.key)
        if slot is None or (future := slot.granted.pop(ticket.id, None)) is None:
            return
        if slot.holder == ticket.id:
            slot.holder = None
        else:
            future.cancel()
            slot.waiters = [entry for entry in slot.waiters if entry[2] != ticket]
            heapq.heapify(slot.waiters)
        self._promote(ticket.key, slot)

    def waiting(self, key: str) -> int:
        slot = self._slots.get(key)
        return len(slot.waiters) if slot else 0

    def _promote(self, key: str, slot: _Slot) -> None:
        while slot.holder is None and slot.waiters:
            _, _, ticket = heapq.heappop(slot.waiters)
            future = slot.granted.get(ticket.id)
            if future is not None and not future.done():
                slot.holder = ticket.id
                future.set_result(None)
        if slot.holder is None and not slot.waiters and self._slots.get(key) is slot:
            del self._slots[key]

    @staticmethod
    def _position(slot: _Slot, ticket: Ticket) -> int:
        mine = next(entry for entry in slot.waiters if entry[2] == ticket)
        return 1 + sum(1 for entry in slot.waiters if entry < mine)
