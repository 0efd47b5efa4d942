"""What every HTTP adapter shares: one pooled session, draining a finished stream, and errors
described without URLs (their queries hold tokens and device ids) or proxy credentials."""

from __future__ import annotations

import asyncio
from typing import Self

import aiohttp

from bot.logs import scrub_credentials
from bot.upstream.timeouts import UpstreamTimeouts

DRAIN_AFTER_FINAL = 2.0


class PooledClient:
    """One long-lived HTTP session for all answers; create once, `close()` at shutdown."""

    def __init__(self, timeouts: UpstreamTimeouts | None, connection_limit: int) -> None:
        self._timeouts = timeouts or UpstreamTimeouts()
        self._connection_limit = connection_limit
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connect = self._timeouts.connect
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=connect, sock_connect=connect),
                connector=aiohttp.TCPConnector(limit=self._connection_limit, ttl_dns_cache=300),
                # Cookies belong to a login, not to the process: never let responses mix them.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session


async def drain(response: aiohttp.ClientResponse, *, chunk_was_eof: bool) -> bool:
    """Read what follows the final event so the connection can be pooled again."""
    if chunk_was_eof or response.content.at_eof():
        return True
    try:
        async with asyncio.timeout(DRAIN_AFTER_FINAL):
            while await response.content.readany():
                pass
    except (TimeoutError, aiohttp.ClientError):
        return False
    return True


def describe_error(exc: BaseException) -> str:
    """An error's class and message, without the URL and without a proxy's credentials."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or exc.os_error
        text = f"connection to {exc.host}:{exc.port} failed ({reason})"
    elif isinstance(exc, aiohttp.ClientProxyConnectionError):
        text = "the proxy refused the connection"
    else:
        text = type(exc).__name__ + (f": {exc}" if str(exc) and "?" not in str(exc) else "")
    return scrub_credentials(text)
