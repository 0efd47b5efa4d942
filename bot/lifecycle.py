"""Background work that always stops, and shutdown waits that always end.

One `cancel()` is not a reliable stop. A library can turn the CancelledError into an error of its
own (a Redis or network call cancelled while it reconnects or times out), and a loop that catches
that error carries on as if nothing happened; whoever then awaits the task waits forever. So:

- a loop runs in a `BackgroundLoop`, which it asks between steps whether to go on: once stop is
  requested it ends at its next check, whatever its steps catch;
- every wait for tasks to end goes through `stop_tasks` or `finish_within`: the tasks are cancelled
  again and again until they end or the deadline passes, and what is still running then is logged
  with where it is stuck, and left behind so that shutdown moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

STOP_DEADLINE = 10.0  # how long a stop may take before we log it and move on
RECANCEL_EVERY = 0.5  # a swallowed cancellation is repeated this often


async def stop_tasks(
    tasks: Iterable[asyncio.Task[Any]],
    what: str,
    *,
    grace: float = 0.0,
    deadline: float = STOP_DEADLINE,
) -> bool:
    """Let `tasks` end by themselves for `grace` seconds, then cancel them until they end, for
    at most `deadline` seconds more. True when all ended; otherwise the rest are logged.

    A cancellation is repeated with growing pauses (0.5 s, 1 s, 2 s, ...): a swallowed one is
    caught soon, while a task's own clean-up after a cancellation (closing a browser, giving
    up a Redis place) still gets seconds to finish."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    if pending and grace > 0:
        _, pending = await asyncio.wait(pending, timeout=grace)
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    pause = RECANCEL_EVERY
    while pending:
        remaining = end - loop.time()
        if remaining <= 0:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(pause, remaining))
        pause = min(pause * 2, 8.0)
    for task in tasks:
        if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
            log.debug("%s: a task ended with %s", what, type(exc).__name__)
    if pending:
        log.error(
            "%s: %d task(s) did not stop within %.0f s, left behind: %s",
            what,
            len(pending),
            grace + deadline,
            "; ".join(describe(task) for task in pending),
        )
        return False
    return True


async def finish_within(
    work: Coroutine[Any, Any, T], what: str, *, deadline: float = STOP_DEADLINE
) -> T | None:
    """Run `work` (a shutdown step) for at most `deadline` seconds; None if it did not finish,
    or failed (logged)."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=deadline)
    except asyncio.CancelledError:
        task.cancel()  # we are cancelled ourselves: don't leave the step running on its own
        raise
    if not done:
        await stop_tasks([task], what, deadline=1.0)
        log.warning("%s did not finish within %.0f s; moving on", what, deadline)
        return None
    if task.cancelled():
        return None
    if (exc := task.exception()) is not None:
        log.warning("%s failed: %s", what, type(exc).__name__)
        return None
    return task.result()


def describe(task: asyncio.Task[Any]) -> str:
    """A task's name and the innermost line it waits on, for a log line about a stuck stop."""
    return f"{task.get_name()}{where(task)}"


def where(task: asyncio.Task[Any]) -> str:
    """ " at file:line in function" of the innermost coroutine the task awaits, outside asyncio's
    own (a `sleep` says less than the line that called it); "" if unknown."""
    coro: Any = task.get_coro()
    frame = None
    for _ in range(100):  # the chain of awaits, down to the one that is suspended
        current = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if current is not None and "asyncio" not in current.f_code.co_filename:
            frame = current
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
        if coro is None:
            break
    if frame is None:
        return ""
    code = frame.f_code
    return f" at {code.co_filename}:{frame.f_lineno} in {code.co_name}"


class BackgroundLoop:
    """One background loop that ends when asked, between its steps, even if a step swallows a
    cancellation. The loop's body calls `pause()` (or checks `running`) between steps."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return not self._stopping.is_set()

    @property
    def ended(self) -> bool:
        """The loop's task has ended (asked to, or it failed)."""
        return self._task is not None and self._task.done()

    def start(self, body: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._task = asyncio.create_task(body(), name=self.name)
        self._task.add_done_callback(self._ended)

    async def pause(self, seconds: float) -> bool:
        """Wait `seconds`, or less if stop is requested; True while the loop should go on."""
        if self._stopping.is_set():
            return False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        return not self._stopping.is_set()

    async def stop(self, *, grace: float = 0.0, deadline: float = STOP_DEADLINE) -> bool:
        self._stopping.set()
        if self._task is None:
            return True
        return await stop_tasks([self._task], self.name, grace=grace, deadline=deadline)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("background loop %s failed", self.name, exc_info=exc)
