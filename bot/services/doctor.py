"""`python -m bot doctor`: the configured upstream checked end to end, step by step.

What an admin runs first when answers stop: each step says ok or what failed and its likely
cause, and the first failure ends the check (later steps depend on it).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.config import ConfigError, Settings
from bot.services.factories import agent_hosts, build_upstream, login_source
from bot.services.logins import ActiveLogin
from bot.storage.database import Database
from bot.upstream import (
    AuthRejected,
    Finished,
    SignatureRejected,
    TextDelta,
    Upstream,
    UpstreamFailure,
)

CANARY_QUESTION = "Reply with one word: ok"

HINTS = {
    "auth": "log in again (/login, `python -m bot login`, or `auth import`)",
    "signature": "the signing scheme changed or the login is stale: log in again",
    "rate_limited": "rate limited or out of quota: wait, or check the account's credits",
    "unavailable": "the upstream cannot be reached: network, proxy, or a challenge page",
    "interrupted": "the stream broke off: try again; if it keeps happening, check the network",
    "protocol": "the upstream's web protocol has changed: update the bot or pick another UPSTREAM",
    "upstream": "the upstream reported an error of its own",
}


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    ok: bool
    detail: str


class Doctor:
    def __init__(self, settings: Settings, database: Database) -> None:
        self._settings = settings
        self._database = database

    async def steps(self, *, ask: bool = True) -> AsyncIterator[Step]:
        """The settings, then for `UPSTREAM` (and `UPSTREAM_FALLBACK`): login, probe, question."""
        settings = self._settings
        try:
            settings.require_upstream_settings()
        except ConfigError as exc:
            yield Step("settings", False, str(exc))
            return
        yield Step("settings", True, self._describe_settings())
        upstreams = [settings.upstream]
        if settings.upstream_fallback is not None:
            upstreams.append(settings.upstream_fallback)
        for name in upstreams:
            prefix = "" if name == settings.upstream else "fallback "
            async for step in self._check(name, ask=ask):
                yield Step(prefix + step.name, step.ok, step.detail)

    async def _check(self, name: str, *, ask: bool) -> AsyncIterator[Step]:
        login = await login_source(self._settings, self._database, name).current()
        if login is None:
            yield Step(
                "login",
                False,
                f"no {name} login is stored: /login in Telegram, "
                "`python -m bot login`, or `python -m bot auth import FILE`",
            )
            return
        yield self._login_step(login)
        async with _closing(build_upstream(self._settings, name)) as upstream:
            probe = await self._probe(upstream, login)
            yield probe
            if not probe.ok or not ask:
                return
            yield await self._ask(upstream, login)

    def _describe_settings(self) -> str:
        settings = self._settings
        if settings.upstream == "minimax-agent":
            api, stream = agent_hosts(settings)
            return (
                f"UPSTREAM=minimax-agent, region {settings.minimax_region}, model "
                f"{settings.minimax_model}, API {api}, stream {stream}"
            )
        if settings.upstream == "minimax-api":
            return (
                f"UPSTREAM=minimax-api, model {settings.minimax_model}, "
                f"{settings.minimax_api_base_url}"
            )
        return f"UPSTREAM=hailuo, {settings.hailuo_base_url}"

    @staticmethod
    def _login_step(login: ActiveLogin) -> Step:
        record = login.record
        facts = [f"{login.auth.UPSTREAM} login {record.fingerprint} from {record.source or '?'}"]
        expires = login.auth.expires_at
        if expires is not None:
            left = expires - datetime.now(UTC)
            if left.total_seconds() <= 0:
                return Step("login", False, f"{facts[0]}: the token EXPIRED at {expires:%Y-%m-%d}")
            facts.append(f"token expires in {left.days} d")
        if record.invalid_at is not None:
            facts.append(f"marked rejected on {record.invalid_at:%Y-%m-%d %H:%M} UTC")
        return Step("login", record.invalid_at is None, ", ".join(facts))

    @staticmethod
    async def _probe(upstream: Upstream, login: ActiveLogin) -> Step:
        if not upstream.probes_login:
            return Step("probe", True, "this upstream has no probe call: the question tells")
        try:
            await upstream.probe(login.auth)
        except UpstreamFailure as exc:
            return Step("probe", False, _failure(exc, upstream.name))
        return Step("probe", True, "the upstream accepts the login")

    @staticmethod
    async def _ask(upstream: Upstream, login: ActiveLogin) -> Step:
        text = ""
        try:
            events = upstream.stream(login.auth, CANARY_QUESTION, None)
            async with contextlib.aclosing(events):
                async for event in events:
                    if isinstance(event, TextDelta | Finished):
                        text = event.text
        except UpstreamFailure as exc:
            return Step("question", False, _failure(exc, upstream.name))
        if not text.strip():
            return Step("question", False, "the upstream answered with no text")
        shown = " ".join(text.split())
        return Step("question", True, f"answered: {shown[:60]}{'…' if len(shown) > 60 else ''}")


def _failure(exc: UpstreamFailure, upstream: str) -> str:
    hint = HINTS.get(exc.kind, "")
    if isinstance(exc, AuthRejected | SignatureRejected):
        hint = HINTS[exc.kind]
        if upstream == "minimax-api":
            hint = "check MINIMAX_API_KEY (and MINIMAX_API_BASE_URL) and the account's balance"
    return f"{exc.message}" + (f" → {hint}" if hint else "")


@contextlib.asynccontextmanager
async def _closing(upstream: Upstream) -> AsyncIterator[Upstream]:
    try:
        yield upstream
    finally:
        await upstream.close()
