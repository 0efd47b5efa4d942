"""A test can fail, never hang: pytest-timeout's per-test ceiling, with the asyncio tasks shown.

pytest-timeout's own signal method prints the threads' stacks, which for an asyncio test is one
line in `select()`. This plugin replaces its timer: when a test runs past the ceiling it prints
every asyncio task with the line it waits on, then fails the test by name. If the test's
teardown then hangs too, a second alarm dumps everything and ends the run, so CI reports the
name instead of idling until its own limit.
"""

from __future__ import annotations

import asyncio
import faulthandler
import os
import signal
import sys
from types import FrameType
from typing import Any

import pytest

TEARDOWN_CEILING = 120.0


def _print_tasks(out: Any) -> None:
    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:  # no loop runs in this thread
        return
    print(f"\n--- {len(tasks)} asyncio task(s) at the timeout ---", file=out)
    for task in tasks:
        print(f"* {task!r}", file=out)
        task.print_stack(limit=8, file=out)


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    if settings.method != "signal" or not hasattr(signal, "SIGALRM"):
        return None  # pytest-timeout's own timer

    def stuck_teardown(signum: int, frame: FrameType | None) -> None:
        print(f"\n{item.nodeid}: stuck {TEARDOWN_CEILING:.0f} s past its ceiling", file=sys.stderr)
        _print_tasks(sys.stderr)
        faulthandler.dump_traceback(all_threads=True)
        sys.stderr.flush()
        os._exit(1)

    def timed_out(signum: int, frame: FrameType | None) -> None:
        __tracebackhide__ = True
        _print_tasks(sys.stderr)
        signal.signal(signal.SIGALRM, stuck_teardown)
        signal.setitimer(signal.ITIMER_REAL, TEARDOWN_CEILING)
        pytest.fail(f"{item.nodeid} ran past its {settings.timeout:.0f} s ceiling", pytrace=False)

    def cancel() -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)

    item.cancel_timeout = cancel  # type: ignore[attr-defined]
    signal.signal(signal.SIGALRM, timed_out)
    signal.setitimer(signal.ITIMER_REAL, settings.timeout)
    return True
