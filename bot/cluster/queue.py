"""The conversation queue shared by every instance: a Redis sorted set per conversation.

A place is a member scored by its message id; the turn belongs to the lowest member, so a
conversation is answered by one instance at a time, in message order. A place names its
process's incarnation: when the head of a queue belongs to a process that has died, the next
waiter removes it and the queue moves on (within `presence.TTL_SECONDS`). Waiters are woken by a
message on the event bus when a turn ends, and look again every second in case one was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.cluster.events import EventBus
from bot.cluster.presence import Presence
from bot.lifecycle import stop_tasks
from bot.services.queue import QUEUE_NOTICE_AFTER, OnQueued, Ticket

log = logging.getLogger(__name__)

RECHECK_SECONDS = 1.0
TURN_EVENT = "turn"


class RedisConversationQueue:
    def __init__(self, redis: Redis, namespace: str, presence: Presence, bus: EventBus) -> None:
        self._redis = redis
        self._namespace = namespace
        self._presence = presence
        self._bus = bus
        self._seq = itertools.count(1)
        self._mine: set[str] = set()  # this process's places not given up yet
        self._joining: dict[str, tuple[asyncio.Lock, int]] = {}  # lock, joins using it
        self._wakeups: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._cleanups: set[asyncio.Task[None]] = set()
        bus.on(TURN_EVENT, self._on_turn_free)

    def _zkey(self, key: str) -> str:
        return f"{self._namespace}turns:{key}"

    async def join(self, key: str, order: int) -> Ticket:
        ticket = Ticket(key, order, f"{self._presence.incarnation}:{next(self._seq)}")
        # Places of one conversation are added one after another, in the order they were asked
        # for, whatever order their round trips to Redis would finish in.
        lock, users = self._joining.get(key, (asyncio.Lock(), 0))
        self._joining[key] = (lock, users + 1)
        try:
            async with lock:
                await self._redis.zadd(self._zkey(key), {ticket.id: order})
                self._mine.add(ticket.id)
        finally:
            lock, users = self._joining[key]
            if users == 1:
                del self._joining[key]
            else:
                self._joining[key] = (lock, users - 1)
        return ticket

    @asynccontextmanager
    async def turn(self, ticket: Ticket, on_queued: OnQueued | None = None) -> AsyncIterator[None]:
        wakeup = asyncio.Event()
        self._wakeups[ticket.key].add(wakeup)
        notice_at = time.monotonic() + QUEUE_NOTICE_AFTER if on_queued is not None else None
        try:
            while True:
                wakeup.clear()
                try:
                    if await self._is_my_turn(ticket):
                        break
                except RedisError as exc:
                    # The question is accepted already: wait for Redis rather than drop it.
                    log.warning("Redis unavailable while waiting for a turn (%s)", exc)
                timeout = RECHECK_SECONDS
                if notice_at is not None:
                    timeout = min(timeout, max(0.0, notice_at - time.monotonic()))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await wakeup.wait()
                if notice_at is not None and time.monotonic() >= notice_at and on_queued:
                    notice_at = None
                    await on_queued(await self._position(ticket))
            yield
        finally:
            waiters = self._wakeups[ticket.key]
            waiters.discard(wakeup)
            if not waiters:
                del self._wakeups[ticket.key]
            if ticket.id in self._mine:
                self._mine.discard(ticket.id)
                await self._give_up(ticket)

    def discard(self, ticket: Ticket) -> None:
        if ticket.id not in self._mine:
            return
        self._mine.discard(ticket.id)
        task = asyncio.get_running_loop().create_task(self._give_up(ticket))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    def waiting(self, key: str) -> int:
        return len(self._wakeups.get(key, ()))

    async def close(self) -> None:
        await stop_tasks(list(self._cleanups), "giving up queue places", grace=5.0)

    async def _position(self, ticket: Ticket) -> int:
        """How many places are ahead (the one holding the turn included)."""
        try:
            rank = await self._redis.zrank(self._zkey(ticket.key), ticket.id)
        except RedisError:
            rank = None
        return rank if isinstance(rank, int) and rank > 0 else 1

    async def _is_my_turn(self, ticket: Ticket) -> bool:
        zkey = self._zkey(ticket.key)
        while True:
            head = await self._redis.zrange(zkey, 0, 0)
            if not head:
                # Our place was removed (Redis lost it, or we were taken for dead): take it again.
                await self._redis.zadd(zkey, {ticket.id: ticket.order})
                continue
            member = head[0].decode() if isinstance(head[0], bytes) else str(head[0])
            if member == ticket.id:
                return True
            incarnation = member.partition(":")[0]
            if incarnation == self._presence.incarnation:
                if member in self._mine:
                    return False  # our own earlier place: it will pass the turn on
            elif await self._presence.is_alive(incarnation):
                return False
            log.info("clearing a place left by a stopped instance in queue %s", ticket.key)
            await self._redis.zrem(zkey, member)

    async def _give_up(self, ticket: Ticket) -> None:
        try:
            await self._redis.zrem(self._zkey(ticket.key), ticket.id)
            await self._bus.publish(TURN_EVENT, key=ticket.key)
        except RedisError as exc:
            log.warning("could not give up a place in queue %s: %s", ticket.key, exc)

    async def _on_turn_free(self, message: dict[str, Any]) -> None:
        for wakeup in self._wakeups.get(str(message.get("key")), ()):
            wakeup.set()
