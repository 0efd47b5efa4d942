"""The shared scheduler: limits per chat, per group and overall; urgent calls first."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

from bot.services.queue import LocalConversationQueue
from bot.telegram.pacer import Pacer, PacingLimits, Priority


async def test_one_chat_is_spaced_by_the_chat_interval() -> None:
    pacer = Pacer(PacingLimits(chat_interval=0.3))
    stamps: list[float] = []
    for _ in range(4):
        async with pacer.permit(42, Priority.FRAME):
            stamps.append(time.monotonic())
    await pacer.close()
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(gap >= 0.3 for gap in gaps), gaps


async def test_urgent_waiters_go_before_frames() -> None:
    pacer = Pacer(PacingLimits(global_per_second=5, chat_interval=0.01))
    order: list[str] = []

    async def call(name: str, chat: int, priority: Priority) -> None:
        async with pacer.permit(chat, priority):
            order.append(name)

    # Saturate the global budget first, then queue frames before an urgent call.
    await asyncio.gather(*(call(f"warm{n}", 100 + n, Priority.FRAME) for n in range(5)))
    tasks = [asyncio.create_task(call(f"frame{n}", 200 + n, Priority.FRAME)) for n in range(3)]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(call("urgent", 300, Priority.URGENT)))
    await asyncio.gather(*tasks)
    await pacer.close()
    assert order[5] == "urgent"


async def test_penalized_chat_waits_while_others_proceed() -> None:
    pacer = Pacer(PacingLimits(chat_interval=0.01))
    pacer.penalize(1, 0.5)
    done: list[int] = []
    started = time.monotonic()

    async def call(chat: int) -> None:
        async with pacer.permit(chat, Priority.URGENT):
            done.append(chat)

    await asyncio.gather(call(1), call(2))
    elapsed = time.monotonic() - started
    await pacer.close()
    assert done == [2, 1]
    assert elapsed >= 0.5


async def test_group_budget_is_spread_over_the_minute() -> None:
    pacer = Pacer(PacingLimits(chat_interval=0.01, group_per_minute=600))  # one per 0.1 s
    stamps: list[float] = []
    for _ in range(3):
        async with pacer.permit(-100, Priority.FRAME):
            stamps.append(time.monotonic())
    await pacer.close()
    assert all(b - a >= 0.1 for a, b in itertools.pairwise(stamps))


async def test_conversation_queue_orders_waiters_by_message() -> None:
    queue = LocalConversationQueue()
    order: list[int] = []
    first_in = asyncio.Event()
    release = asyncio.Event()

    async def ask(message_id: int) -> None:
        async with queue.turn(await queue.join("chat", message_id)):
            if message_id == 1:
                first_in.set()
                await release.wait()
            order.append(message_id)

    first = asyncio.create_task(ask(1))
    await first_in.wait()
    late = [asyncio.create_task(ask(n)) for n in (4, 2, 3)]
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.gather(first, *late)
    assert order == [1, 2, 3, 4]
    assert queue.waiting("chat") == 0


async def test_the_pacer_says_when_it_is_busy() -> None:
    """A typing indicator is dropped while calls wait for permits."""
    pacer = Pacer(PacingLimits(global_per_second=29, chat_interval=1.0))
    assert not pacer.busy
    async with pacer.permit(7, Priority.FRAME):
        waiter = asyncio.create_task(pacer.acquire(7, Priority.FRAME))  # same chat: must wait
        await asyncio.sleep(0.05)
        assert pacer.busy
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
    await pacer.close()
