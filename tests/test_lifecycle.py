"""Stopping background work: a swallowed cancellation cannot hang a shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from bot.lifecycle import BackgroundLoop, finish_within, stop_tasks


class LibraryError(Exception):
    """What a library may turn a cancellation into (e.g. a Redis client mid-reconnect)."""


async def call_that_swallows_cancellation() -> None:
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        raise LibraryError("connection reset") from None


async def test_a_loop_whose_step_swallows_the_cancellation_still_stops() -> None:
    """The heartbeat's shape: a step in flight when stop is asked turns the cancellation into
    its own error, which the loop catches. One `cancel()` and a `gather` waited forever; the
    loop stops anyway, at its next check."""
    loop = BackgroundLoop("heartbeat")
    steps = 0
    in_step = asyncio.Event()

    async def beat() -> None:
        nonlocal steps
        while loop.running:
            steps += 1
            in_step.set()
            with contextlib.suppress(LibraryError):
                await call_that_swallows_cancellation()
            await loop.pause(3.0)

    loop.start(beat)
    await asyncio.wait_for(in_step.wait(), 10)
    async with asyncio.timeout(10):
        assert await loop.stop()
    assert loop.ended
    assert steps == 1  # it did not go round again after stop was asked


async def test_a_task_that_will_not_stop_is_named_and_left_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Shutdown moves on after the deadline and says what did not stop, and where."""
    obstinate = True

    async def stubborn() -> None:
        while obstinate:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn(), name="stubborn-worker")
    try:
        await asyncio.sleep(0)
        caplog.set_level(logging.ERROR, logger="bot.lifecycle")
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(20):
            assert not await stop_tasks([task], "the stubborn part", deadline=1.0)
        assert loop.time() - started < 15  # bounded by its deadline, not by the task
        assert "the stubborn part" in caplog.text
        assert "stubborn-worker" in caplog.text
        assert "in stubborn" in caplog.text  # where it is stuck
    finally:
        obstinate = False
        task.cancel()
        await asyncio.wait({task}, timeout=5)
    assert task.done()


async def test_tasks_get_their_grace_before_being_cancelled() -> None:
    finished: list[str] = []

    async def short_cleanup() -> None:
        await asyncio.sleep(0.2)
        finished.append("cleanup")

    task = asyncio.create_task(short_cleanup())
    assert await stop_tasks([task], "cleanups", grace=10.0)
    assert finished == ["cleanup"]
    assert not task.cancelled()


async def test_a_shutdown_step_that_hangs_is_given_up(caplog: pytest.LogCaptureFixture) -> None:
    async def close_forever() -> str:
        await asyncio.Event().wait()
        return "never"

    async def close_fine() -> str:
        return "closed"

    caplog.set_level(logging.WARNING, logger="bot.lifecycle")
    async with asyncio.timeout(20):
        assert await finish_within(close_forever(), "closing the thing", deadline=0.5) is None
        assert await finish_within(close_fine(), "closing the other thing") == "closed"
    assert "closing the thing did not finish" in caplog.text
