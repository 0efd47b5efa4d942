"""Log in to an upstream in a real browser (nodriver + Chromium) and capture the login.

`BrowserLogin.events()` opens the upstream's site, lets a person log in there, and polls the
page with the adapter's `LoginCapture` until it returns credentials that work; it yields progress
and finally the credentials. The browser is always closed — on success, timeout, error or
cancel — and no Chromium process outlives the flow. Nothing here knows an upstream's storage
keys or URLs: the capture does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from bot.logs import without_credentials
from bot.upstream.credentials import Credentials

log = logging.getLogger(__name__)

PAGE_READY_JS = "!!document.querySelector('body:not(.no-js)')"
BROWSER_ARGS = (
    # A server has no use for these, and a closed network refuses them noisily.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
)


class LoginError(Exception):
    """The login did not complete; the message says why."""


class LoginTimeout(LoginError):
    pass


@dataclass(frozen=True, slots=True)
class LoginOptions:
    base_url: str
    profile_dir: Path
    timeout: float = 300.0
    headless: bool = True
    browser_path: str | None = None
    proxy: str | None = None
    login_url: str | None = None
    poll_interval: float = 1.0
    progress_every: float = 10.0


@dataclass(frozen=True, slots=True)
class LoginLink:
    """Where the admin can see and use the server's browser (e.g. a noVNC page)."""

    url: str


@dataclass(frozen=True, slots=True)
class LoginStage:
    stage: str  # "starting", "opened", "waiting"
    seconds_left: float


@dataclass(frozen=True, slots=True)
class LoginDone:
    auth: Credentials


LoginEvent = LoginLink | LoginStage | LoginDone


class BrowserPage(Protocol):
    """What a capture may ask of the page the person logs in on."""

    async def string(self, expression: str) -> str:
        """Evaluate JavaScript in the page; its string result ("" otherwise)."""

    async def cookies(self) -> dict[str, str]:
        """The cookies of the site the login started on."""


class LoginCapture(Protocol):
    """An adapter's reading of its logged-in page: credentials that work, or None (not yet)."""

    async def __call__(self, page: BrowserPage) -> Credentials | None: ...


@dataclass
class BrowserLogin:
    options: LoginOptions
    capture: LoginCapture
    _browser: Any = field(default=None, init=False)
    _tab: Any = field(default=None, init=False)

    async def events(self) -> AsyncIterator[LoginEvent]:
        options = self.options
        deadline = time.monotonic() + options.timeout
        if options.login_url:
            yield LoginLink(options.login_url)
        yield LoginStage("starting", options.timeout)
        try:
            await self._start_browser()
            self._tab = await self._browser.get(options.base_url)
            await self._wait_for(PAGE_READY_JS, deadline, "the page to load")
            yield LoginStage("opened", deadline - time.monotonic())
            next_progress = time.monotonic() + options.progress_every
            while (auth := await self.capture(self)) is None:
                if time.monotonic() >= deadline:
                    raise LoginTimeout(f"nobody logged in within {options.timeout:.0f} s")
                if time.monotonic() >= next_progress:
                    next_progress = time.monotonic() + options.progress_every
                    yield LoginStage("waiting", max(0.0, deadline - time.monotonic()))
                await asyncio.sleep(options.poll_interval)
            yield LoginDone(auth)
        finally:
            await self.close()

    async def screenshot(self) -> bytes | None:
        """A PNG of the page the browser shows, or None when there is no page yet."""
        if self._tab is None:
            return None
        encoded = await self._tab.save_screenshot(format="png", as_base64=True)
        return base64.b64decode(encoded)

    async def close(self) -> None:
        browser, self._browser, self._tab = self._browser, None, None
        if browser is not None:
            browser.stop()
        # Shielded: a cancellation repeated during shutdown must not skip the kill fallback.
        await asyncio.shield(stop_leftover_browsers(self.options.profile_dir))

    async def _start_browser(self) -> None:
        import nodriver

        self.options.profile_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        await stop_leftover_browsers(self.options.profile_dir)  # a crash may have left one
        arguments = list(BROWSER_ARGS)
        if self.options.proxy:
            # Chromium takes no credentials here, and a command line is readable by every
            # local user: the proxy goes without them (it must allow the server's address).
            proxy = without_credentials(self.options.proxy)
            if proxy != self.options.proxy:
                log.warning("the browser login uses the proxy without its credentials")
            arguments.append(f"--proxy-server={proxy}")
        try:
            self._browser = await nodriver.start(
                headless=self.options.headless,
                user_data_dir=str(self.options.profile_dir),
                browser_executable_path=self.options.browser_path,
                browser_args=arguments,
            )
        except FileNotFoundError as exc:
            raise LoginError(
                "no Chromium found: install it (Debian: apt-get install chromium) "
                "or set BROWSER_PATH"
            ) from exc
        except Exception as exc:
            raise LoginError(f"the browser did not start: {exc}") from exc

    async def string(self, expression: str) -> str:
        result = await self._tab.evaluate(expression)
        return result if isinstance(result, str) else ""

    async def cookies(self) -> dict[str, str]:
        host = urlsplit(self.options.base_url).hostname or ""
        return {
            cookie.name: cookie.value
            for cookie in await self._browser.cookies.get_all()
            if _same_site(cookie.domain, host)
        }

    async def _wait_for(self, expression: str, deadline: float, what: str) -> None:
        while True:
            if await self._tab.evaluate(expression) is True:
                return
            if time.monotonic() >= deadline:
                raise LoginTimeout(f"timed out waiting for {what}")
            await asyncio.sleep(0.2)


def _same_site(cookie_domain: str, host: str) -> bool:
    domain = cookie_domain.lstrip(".")
    return host == domain or host.endswith("." + domain) or domain.endswith("." + host)


def browser_processes(profile_dir: Path) -> list[int]:
    """Pids of Chromium processes using this profile (Linux /proc; empty elsewhere)."""
    marker = f"--user-data-dir={profile_dir}".encode()
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if marker in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return [pid for pid in pids if pid != os.getpid()]


async def stop_leftover_browsers(profile_dir: Path, grace: float = 5.0) -> None:
    """Wait for the browser to exit; end whatever is left of it."""
    deadline = time.monotonic() + grace
    # /proc offers no event to wait on: poll it briefly.
    while (pids := browser_processes(profile_dir)) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in browser_processes(profile_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        await asyncio.sleep(0.3)
    if pids and not browser_processes(profile_dir):
        log.info("ended %d leftover browser process(es)", len(pids))
