"""One answer at a time per conversation, in message order; different conversations never wait."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class _Slot:
    busy: bool = False
    waiters: list[tuple[int, int, asyncio.Future[None]]] = field(default_factory=list)


class ConversationQueue:
    def __init__(self) -> None:
        self._slots: dict[Hashable, _Slot] = {}
        self._seq = itertools.count()

    def waiting(self, key: Hashable) -> int:
        slot = self._slots.get(key)
        return len(slot.waiters) if slot else 0

    @asynccontextmanager
    async def turn(
        self,
        key: Hashable,
        order: int,
        on_queued: Callable[[int], Awaitable[None]] | None = None,
        notice_after: float = 1.0,
    ) -> AsyncIterator[None]:
        """Hold the conversation; while another answer runs, wait (ordered by `order`).

        `on_queued(position)` is called if the wait lasts longer than `notice_after` seconds, so
        a question sent just as the previous answer is being saved gets no needless notice."""
        slot = self._slots.setdefault(key, _Slot())
        if slot.busy or slot.waiters:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry = (order, next(self._seq), future)
            heapq.heappush(slot.waiters, entry)
            try:
                if on_queued is not None:
                    done, _ = await asyncio.wait({future}, timeout=notice_after)
                    if not done:
                        ahead = 1 + sum(1 for waiter in slot.waiters if waiter < entry)
                        await on_queued(ahead)
                await future
            except BaseException:
                if future.done() and not future.cancelled():
                    self._pass_on(key, slot)  # our turn came as we left: hand it on
                else:
                    future.cancel()
                    slot.waiters.remove(entry)
                    heapq.heapify(slot.waiters)
                    self._forget_if_idle(key, slot)
                raise
        else:
            slot.busy = True
        try:
            yield
        finally:
            self._pass_on(key, slot)

    def _pass_on(self, key: Hashable, slot: _Slot) -> None:
        while slot.waiters:
            _, _, future = heapq.heappop(slot.waiters)
            if not future.done():
                future.set_result(None)
                return
        slot.busy = False
        self._forget_if_idle(key, slot)

    def _forget_if_idle(self, key: Hashable, slot: _Slot) -> None:
        if not slot.busy and not slot.waiters and self._slots.get(key) is slot:
            del self._slots[key]
