"""Storage steps through a short database outage (a restart, a failover, a cut connection)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger(__name__)

T = TypeVar("T")
OUTAGE_SECONDS = 20.0


def transient(exc: BaseException) -> bool:
    """The database could not be reached, as opposed to refusing what we asked."""
    if isinstance(
        exc, OperationalError | InterfaceError | OSError | ConnectionError | TimeoutError
    ):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


async def through_outage(
    step: Callable[[], Awaitable[T]], what: str, *, deadline: float = OUTAGE_SECONDS
) -> T:
    """Run `step`; while the database cannot be reached, try again with growing pauses for up
    to `deadline` seconds (then the last error is raised)."""
    delay = 0.25
    end = time.monotonic() + deadline
    while True:
        try:
            return await step()
        except Exception as exc:
            if not transient(exc) or time.monotonic() >= end:
                raise
            log.warning("%s: database unreachable (%s); retrying", what, type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 4.0)
