"""The upstreams a question can be answered through: the primary (`UPSTREAM`), and a fallback
(`UPSTREAM_FALLBACK`) for when the primary cannot answer."""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bot.services.logins import ActiveLogin, protect
from bot.storage.logins import LoginRecord
from bot.storage.models import utcnow
from bot.upstream import Credentials, Upstream

log = logging.getLogger(__name__)

BACKOFF_FIRST = 30.0
BACKOFF_MAX = 600.0


class LoginSource(Protocol):
    """Where an upstream's credentials come from: a stored login (web upstreams) or a key."""

    upstream: str

    async def current(self) -> ActiveLogin | None: ...

    async def renewed(self, login: ActiveLogin, auth: Credentials) -> ActiveLogin: ...

    async def worked(self, login: ActiveLogin) -> None: ...

    async def rejected(self, login: ActiveLogin) -> bool: ...


class KeyLogins:
    """An API key from the settings: nothing to store, nothing to log in to. A refused key is
    not remembered as dead (it may be topped up or re-enabled); admins are told once until it
    works again."""

    def __init__(self, auth: Credentials) -> None:
        protect(auth)
        self.upstream = auth.UPSTREAM
        self._login = ActiveLogin(
            auth,
            LoginRecord(
                id=0,
                fingerprint=auth.fingerprint,
                is_current=True,
                source="settings",
                obtained_by=None,
                obtained_at=utcnow(),
                last_success_at=None,
                invalid_at=None,
                credentials={},
            ),
        )
        self._told = False

    async def current(self) -> ActiveLogin | None:
        return self._login

    async def renewed(self, login: ActiveLogin, auth: Credentials) -> ActiveLogin:
        return login

    async def worked(self, login: ActiveLogin) -> None:
        self._told = False

    async def rejected(self, login: ActiveLogin) -> bool:
        first = not self._told
        self._told = True
        if first:
            log.warning("%s refused the API key %s", self.upstream, login.auth.fingerprint)
        return first


@dataclass(frozen=True, slots=True)
class Endpoint:
    client: Upstream
    logins: LoginSource

    @property
    def name(self) -> str:
        return self.client.name


class FailoverReason(enum.StrEnum):
    LOGIN = "login"  # the primary's login is missing or rejected: until an admin logs in
    OUTAGE = "outage"  # down, out of quota, changed: retried after a back-off


class Failover:
    """When the primary failed, how long it rests before it is tried again (outages: 30 s,
    doubling up to 10 minutes; a login problem rests until the login changes, which the stored
    login shows), and whether admins have been told of this episode."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._backoff = 0.0
        self._resting_until = 0.0
        self._episode: FailoverReason | None = None

    @property
    def resting(self) -> bool:
        """The primary had an outage lately: the fallback answers until the back-off ends."""
        return self._clock() < self._resting_until

    def primary_failed(self, reason: FailoverReason, retry_after: float | None = None) -> bool:
        """Record a failure; True when it starts an episode (admins are told once). Answers
        that were already under way when the primary started resting fail too: they do not
        lengthen the rest (only a failed try after a rest doubles it)."""
        if reason is FailoverReason.OUTAGE and not self.resting:
            self._backoff = min(BACKOFF_MAX, self._backoff * 2 or BACKOFF_FIRST)
            self._resting_until = self._clock() + max(self._backoff, retry_after or 0.0)
        started = self._episode is None
        self._episode = reason
        return started

    def primary_worked(self) -> None:
        if self._episode is not None:
            log.info("the primary upstream answers again; failover over")
        self._episode = None
        self._backoff = 0.0
        self._resting_until = 0.0
