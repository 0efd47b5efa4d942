"""A test can fail, never hang: pytest-timeout's per-test ceiling, with the asyncio tasks shown.

pytest-timeout's own signal method prints the threads' stacks — for an asyncio test, one line in
`select()` — and raises in whatever frame runs, which may be a background task that swallows it.
This plugin replaces its timer. When a test runs past the ceiling it prints every asyncio task
with the line it waits on (capture suspended, so it reaches the CI log) and cancels the test's
own task, so the test fails by name and its teardown runs. A watchdog thread, independent of the
signal and of pytest-timeout's cancel hook, then gives setup, call and teardown together
`TEARDOWN_CEILING` more seconds: if they still hang it dumps every stack and ends the run, so CI
reports the name instead of idling until its own limit.
"""

from __future__ import annotations

import asyncio
import faulthandler
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

import pytest

from bot.lifecycle import where

TEARDOWN_CEILING = float(os.environ.get("HANG_GUARD_TEARDOWN", "120"))
_watchdogs: dict[str, threading.Timer] = {}
_disarm: dict[str, Any] = {}  # nodeid -> how to take this plugin's alarm down


def _say(item: pytest.Item, text: str, *, all_threads: bool = False) -> None:
    """Write to the real stderr even while pytest captures output."""
    capture = item.config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.suspend_global_capture(in_=True)
    try:
        sys.stderr.write(text)
        _print_tasks()
        if all_threads:
            faulthandler.dump_traceback(all_threads=True)
        sys.stderr.flush()
    finally:
        if capture is not None and not all_threads:
            capture.resume_global_capture()


def _print_tasks() -> None:
    loop = _running_loop()
    if loop is None:
        return
    tasks = asyncio.all_tasks(loop)
    sys.stderr.write(f"--- {len(tasks)} asyncio task(s) ---\n")
    for task in tasks:
        sys.stderr.write(f"* {task.get_name()}{where(task)}\n")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _test_task(item: pytest.Item) -> asyncio.Task[Any] | None:
    loop = _running_loop()
    name = getattr(item, "originalname", item.name)
    if loop is None:
        return None
    for task in asyncio.all_tasks(loop):
        if getattr(task.get_coro(), "__name__", None) == name:
            return task
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    if (
        settings.method != "signal"
        or not hasattr(signal, "SIGALRM")
        or threading.current_thread() is not threading.main_thread()
    ):
        return None  # pytest-timeout's own timer

    def stuck() -> None:
        _say(
            item,
            f"\n{item.nodeid}: stuck {TEARDOWN_CEILING:.0f} s past its ceiling; ending the run\n",
            all_threads=True,
        )
        os._exit(1)

    def timed_out(signum: int, frame: FrameType | None) -> None:
        __tracebackhide__ = True
        watchdog = threading.Timer(TEARDOWN_CEILING, stuck)
        watchdog.daemon = True
        watchdog.start()
        _watchdogs[item.nodeid] = watchdog
        _say(item, f"\nTIMEOUT: {item.nodeid} ran past its {settings.timeout:.0f} s ceiling\n")
        task, loop = _test_task(item), _running_loop()
        if task is not None and loop is not None:
            loop.call_soon_threadsafe(task.cancel)  # fails by name, its teardown runs
            return
        pytest.fail(f"{item.nodeid} ran past its {settings.timeout:.0f} s ceiling", pytrace=False)

    previous = signal.signal(signal.SIGALRM, timed_out)

    def cancel() -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    _disarm[item.nodeid] = cancel
    signal.setitimer(signal.ITIMER_REAL, settings.timeout)
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_cancel_timer(item: pytest.Item) -> bool | None:
    """pytest-timeout also disarms when a phase fails (to spare a debugger): that would leave
    a failed test's teardown unguarded. This plugin's alarm stays until the test is over."""
    return True if item.nodeid in _disarm else None


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    """Setup, call and teardown are all over: nothing is left to guard."""
    disarm = _disarm.pop(nodeid, None)
    if disarm is not None:
        disarm()
    watchdog = _watchdogs.pop(nodeid, None)
    if watchdog is not None:
        watchdog.cancel()
