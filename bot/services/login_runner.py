"""At most one browser login at a time, saved on success and announced to the caller."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.lifecycle import stop_tasks
from bot.services.logins import LoginService
from bot.storage.logins import LoginRecord
from bot.upstream.browser import BrowserLogin, LoginDone, LoginError, LoginEvent

log = logging.getLogger(__name__)

BROWSER_STOP_DEADLINE = 30.0  # closing Chromium and its profile can take a while


class LoginBusy(Exception):
    """A login is already running."""


class LoginCancelled(Exception):
    """Someone asked to stop the login."""


class LoginCoordination(Protocol):
    """One browser login across all instances (Redis); requests reach the one running it."""

    async def claim_login(self) -> bool: ...

    async def release_login(self) -> None: ...

    async def login_running_elsewhere(self) -> bool: ...

    async def ask_login(self, action: str, chat_id: int) -> None: ...


class LoginRunner:
    def __init__(
        self,
        make_login: Callable[[], BrowserLogin],
        logins: LoginService,
        coordination: LoginCoordination | None = None,
    ) -> None:
        self._make_login = make_login
        self._logins = logins
        self._coordination = coordination
        self._current: BrowserLogin | None = None
        self._task: asyncio.Task[LoginRecord] | None = None

    @property
    def busy(self) -> bool:
        return self._current is not None

    async def run(
        self,
        on_event: Callable[[LoginEvent], Awaitable[None]],
        *,
        obtained_by: int | None,
        source: str,
    ) -> LoginRecord:
        """Drive one login to its end; raises LoginBusy, LoginCancelled or LoginError."""
        if self._current is not None:
            raise LoginBusy
        if self._coordination is not None:
            try:
                claimed = await self._coordination.claim_login()
            except Exception as exc:
                raise LoginError(f"the instances cannot agree on who logs in: {exc}") from None
            if not claimed:
                raise LoginBusy  # another instance runs one
        if self._current is not None:  # a local one started while we asked
            raise LoginBusy
        login = self._current = self._make_login()
        self._task = asyncio.create_task(self._drive(login, on_event, obtained_by, source))
        try:
            return await asyncio.shield(self._task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                # We are being cancelled ourselves: take the browser down.
                await stop_tasks([self._task], "the browser login", deadline=BROWSER_STOP_DEADLINE)
                raise
            raise LoginCancelled from None
        finally:
            self._current = None
            self._task = None
            if self._coordination is not None:
                await self._coordination.release_login()

    async def _drive(
        self,
        login: BrowserLogin,
        on_event: Callable[[LoginEvent], Awaitable[None]],
        obtained_by: int | None,
        source: str,
    ) -> LoginRecord:
        async for event in login.events():
            if isinstance(event, LoginDone):
                record = await self._logins.save(event.auth, source=source, obtained_by=obtained_by)
                await on_event(event)
                return record
            await on_event(event)
        raise AssertionError("the login flow ended without a result")

    def cancel(self) -> bool:
        if self._task is None:
            return False
        self._task.cancel()
        return True

    async def cancel_anywhere(self) -> bool:
        """Cancel the login, here or on the instance running it."""
        if self.cancel():
            return True
        if self._coordination is not None and await self._coordination.login_running_elsewhere():
            await self._coordination.ask_login("cancel", 0)
            return True
        return False

    async def screenshot_elsewhere(self, chat_id: int) -> bool:
        """Ask the instance running the login to send its screenshot to `chat_id`."""
        if self._coordination is not None and await self._coordination.login_running_elsewhere():
            await self._coordination.ask_login("screenshot", chat_id)
            return True
        return False

    async def cancel_and_wait(self) -> None:
        """At shutdown: stop a running login and let it close its browser."""
        if self._task is not None:
            await stop_tasks([self._task], "the browser login", deadline=BROWSER_STOP_DEADLINE)

    async def screenshot(self) -> bytes | None:
        login = self._current
        return await login.screenshot() if login is not None else None
