"""Streams answers from the MiniMax Agent web chat ("minimax-cloud" generation, reference §3.1).

The API host creates sessions and answers JSON; the stream host takes each turn and answers it as
server-sent events on the same POST. Every request carries the web app's ordered query string
and its signature (§3.0, §4), from one clock reading. The one-time initialisation of an account
(config, agents, channel connections) runs before its first session and again when the server
says it is missing (`1400010501`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp

from bot.minimax_agent.credentials import AgentAuth
from bot.minimax_agent.frames import FrameAssembler
from bot.minimax_agent.signing import x_signature, yy
from bot.upstream import (
    AuthRejected,
    Conversation,
    ConversationStarted,
    Credentials,
    Finished,
    ProtocolChanged,
    RateLimited,
    SignatureRejected,
    StreamInterrupted,
    TitleGenerated,
    Turn,
    UpstreamError,
    UpstreamEvent,
    UpstreamFailure,
    UpstreamTimeouts,
    UpstreamUnavailable,
)
from bot.upstream.http import PooledClient, describe_error, drain
from bot.upstream.sse import SseDecoder, SseTooLarge

log = logging.getLogger(__name__)

HOSTS = {
    "intl": ("https://agent.minimax.io", "https://agent-stream.minimax.io"),
    "cn": ("https://agent.minimaxi.com", "https://agent-stream.minimaxi.com"),
}
PREFIX = "/minimax-cloud/api/v1"
NOT_INITIALISED = 1400010501
SESSION_INVALID = 1022100011
RENEW_BEFORE = timedelta(days=1)
# An empty 401 has three causes the server does not tell apart (§2.4).
EMPTY_401 = (
    "MiniMax Agent refused the login (401, empty body): the token expired, the user id is "
    "wrong, or the region is wrong (the international site refuses mainland-China addresses)"
)
TITLE_WAIT = 3.0


class _NotInitialised(UpstreamError):
    """The account's initialisation is missing (HTTP 500, 1400010501)."""

    def __init__(self) -> None:
        super().__init__("MiniMax Agent: environment not configured (1400010501)")


class _SessionBusy(UpstreamError):
    """409: the session still runs a turn (e.g. one we stopped): a new session is needed."""

    def __init__(self, message: str = "MiniMax Agent: the conversation is busy (409)") -> None:
        super().__init__(message)


class _SessionGone(_SessionBusy):
    """404 on the message POST: the session no longer exists (deleted on the site, expired).
    Not in the protocol sources; handled like 409, a tolerant reading."""

    def __init__(self) -> None:
        super().__init__("MiniMax Agent no longer has this conversation (404)")


def default_hosts(region: str) -> tuple[str, str]:
    return HOSTS["cn" if region == "cn" else "intl"]


class MiniMaxAgentClient(PooledClient):
    """One long-lived HTTP session for all answers; create once, `close()` at shutdown."""

    name = "minimax-agent"
    probes_login = True
    keeps_history = True  # the session holds the conversation: `history` is not sent

    def __init__(
        self,
        *,
        api_url: str,
        stream_url: str,
        model: str = "MiniMax-M3",
        reasoning: bool = True,
        proxy: str | None = None,
        timeouts: UpstreamTimeouts | None = None,
        connection_limit: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.stream_url = stream_url.rstrip("/")
        self.model = model
        self._reasoning = reasoning
        self._proxy = proxy
        super().__init__(timeouts, connection_limit)
        self._clock = clock
        self._agents: dict[str, str] = {}  # account fingerprint → agent id, once initialised
        self._preparing: dict[str, asyncio.Lock] = {}

    # --- the interface -------------------------------------------------------------------------

    async def probe(self, credentials: Credentials) -> AgentAuth:
        """`/v1/api/user/info` with this login: the account must be the stored one. A token
        with less than a day left is renewed; the renewed credentials are returned."""
        auth = agent_auth(credentials)
        info = await self.user_info(auth)
        real_user_id = str(info.get("realUserID") or "")
        if real_user_id and real_user_id != auth.real_user_id:
            raise AuthRejected("this token belongs to another MiniMax account than the stored one")
        expires = auth.expires_at
        if expires is not None and expires - datetime.now(UTC) < RENEW_BEFORE:
            return await self.renew(auth)
        return auth

    async def title(self, credentials: Credentials, conversation: Conversation) -> str:
        auth = agent_auth(credentials)
        data = await self._call("GET", auth, f"{PREFIX}/session/{conversation.chat_id}")
        session = data.get("session") if isinstance(data.get("session"), dict) else {}
        assert isinstance(session, dict)
        title = session.get("title")
        return title if isinstance(title, str) else ""

    async def stream(
        self,
        credentials: Credentials,
        text: str,
        conversation: Conversation | None = None,
        *,
        history: Sequence[Turn] = (),
        model: str | None = None,
    ) -> AsyncGenerator[UpstreamEvent, None]:
        """Ask `text` in `conversation`'s session when it was made with this account, else in a
        new one. Yields ConversationStarted, ReasoningDelta, TextDelta, Finished (and
        TitleGenerated after a new session's first answer)."""
        auth = agent_auth(credentials)
        reuse = conversation is not None and conversation.belongs_to(auth.fingerprint, self.name)
        if conversation is not None and not reuse:
            log.info("conversation %s was made elsewhere; starting a new one", conversation.chat_id)
        current = conversation if reuse and conversation is not None else None
        is_new = current is None
        model_id = model or self.model
        if current is None:
            current = await self._new_session(auth, model_id)
        yield ConversationStarted(current, is_new=is_new)
        try:
            response = await self._post_turn(auth, current, text, model_id)
        except _SessionBusy as exc:
            log.info("session %s: %s; continuing in a new session", current.chat_id, exc.message)
            current = await self._new_session(auth, model_id)
            is_new = True
            yield ConversationStarted(current, is_new=True)
            response = await self._post_turn(auth, current, text, model_id)
        finished = False
        async with contextlib.aclosing(self._read(response, current)) as events:
            async for event in events:
                yield event
                finished = isinstance(event, Finished)
        if finished and is_new:
            title = await self._title_quietly(auth, current)
            if title:
                yield TitleGenerated(title)

    # --- account set-up --------------------------------------------------------------------------

    async def user_info(self, auth: AgentAuth, *, with_user_id: bool = True) -> dict[str, Any]:
        """`data.userInfo` (realUserID among it); the one call that works without user_id."""
        data = await self._call("GET", auth, "/v1/api/user/info", with_user_id=with_user_id)
        info = data.get("userInfo") if isinstance(data.get("userInfo"), dict) else None
        if not isinstance(info, dict):
            raise ProtocolChanged("MiniMax Agent's user info has no userInfo")
        return info

    async def renew(self, auth: AgentAuth) -> AgentAuth:
        data = await self._call("POST", auth, "/v1/api/user/renewal", body={})
        token = data.get("token")
        if not isinstance(token, str) or not token:
            raise ProtocolChanged("MiniMax Agent's renewal returned no token")
        log.info("renewed the MiniMax Agent token of %s", auth.fingerprint)
        return auth.model_copy(update={"token": token})

    async def models(self, credentials: Credentials) -> list[str]:
        data = await self._call("GET", agent_auth(credentials), f"{PREFIX}/config")
        return [
            str(model.get("model_id") or model.get("id"))
            for model in data.get("models") or []
            if isinstance(model, dict) and (model.get("model_id") or model.get("id"))
        ]

    async def _prepare(self, auth: AgentAuth, *, again: bool = False) -> str:
        """The account's initialisation (§3.1 step 0), once; returns the agent id to use."""
        key = auth.fingerprint
        lock = self._preparing.setdefault(key, asyncio.Lock())
        async with lock:
            if key in self._agents and not again:
                return self._agents[key]
            await self._call("GET", auth, f"{PREFIX}/config")
            data = await self._call("GET", auth, f"{PREFIX}/agent")
            agent_id = _pick_agent(data.get("agents"))
            await self._call("GET", auth, f"{PREFIX}/channel/connections")
            self._agents[key] = agent_id
            return agent_id

    async def _new_session(self, auth: AgentAuth, model_id: str) -> Conversation:
        agent_id = await self._prepare(auth)
        body = {"model": self._model_object(model_id)}
        try:
            data = await self._call("POST", auth, f"{PREFIX}/agent/{agent_id}/session", body=body)
        except _NotInitialised:
            log.info("MiniMax Agent forgot the account's set-up; initialising again")
            agent_id = await self._prepare(auth, again=True)
            data = await self._call("POST", auth, f"{PREFIX}/agent/{agent_id}/session", body=body)
        session_id = _session_id(data)
        if not session_id:
            raise ProtocolChanged("MiniMax Agent created no session (no session_id)")
        return Conversation(
            chat_id=session_id, token_fingerprint=auth.fingerprint, upstream=self.name
        )

    def _model_object(self, model_id: str) -> dict[str, Any]:
        # `reasoning` is the 2026-09 capture's key (§3.1); older sources sent `variant`.
        return {"provider_id": "minimax", "model_id": model_id, "reasoning": self._reasoning}

    # --- one turn --------------------------------------------------------------------------------

    async def _post_turn(
        self, auth: AgentAuth, conversation: Conversation, text: str, model_id: str
    ) -> aiohttp.ClientResponse:
        path = f"{PREFIX}/session/{conversation.chat_id}/message"
        body = _json(
            {
                "content": text,
                "model": self._model_object(model_id),
                "turn_id": str(uuid.uuid4()),
                "worktreeMode": False,
            }
        )
        ms = self._now_ms()
        query = self._query(auth, ms)
        url = f"{self.stream_url}{path}?{query}"
        headers = self._headers(auth, ms, body, target=url)  # the stream host signs absolute
        headers["accept"] = "text/event-stream"
        try:
            async with asyncio.timeout(self._timeouts.first_event):
                response = await self.session.post(
                    url,
                    data=body.encode(),
                    headers=headers,
                    proxy=self._proxy,
                    allow_redirects=False,
                )
        except TimeoutError:
            raise UpstreamUnavailable(
                f"MiniMax Agent did not answer within {self._timeouts.first_event:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(
                f"cannot reach MiniMax Agent: {describe_error(exc)}"
            ) from None
        if response.status == 200 and response.content_type == "text/event-stream":
            return response
        if response.status == 404 and "json" in response.content_type:
            # The session is gone (deleted on the site): like a busy one, a new one is needed.
            response.release()
            raise _SessionGone()
        try:
            raise await _refusal(response)
        finally:
            response.close()

    async def _read(
        self, response: aiohttp.ClientResponse, conversation: Conversation
    ) -> AsyncGenerator[UpstreamEvent, None]:
        assembler = FrameAssembler(conversation)
        decoder = SseDecoder()
        loop = asyncio.get_running_loop()
        started = last_event = loop.time()
        total_deadline = started + self._timeouts.total
        got_event = False
        clean_end = False
        try:
            while True:
                phase = self._timeouts.idle if got_event else self._timeouts.first_event
                try:
                    async with asyncio.timeout_at(min(last_event + phase, total_deadline)):
                        chunk = await response.content.readany()
                except TimeoutError:
                    raise StreamInterrupted(
                        "the answer took too long"
                        if loop.time() >= total_deadline
                        else f"MiniMax Agent went silent for {phase:g} s",
                        partial_text=assembler.text,
                        conversation=conversation,
                    ) from None
                except aiohttp.ClientError as exc:
                    raise StreamInterrupted(
                        f"the connection to MiniMax Agent broke: {describe_error(exc)}",
                        partial_text=assembler.text,
                        conversation=conversation,
                    ) from None
                try:
                    sse_events = decoder.feed(chunk) if chunk else decoder.flush()
                except SseTooLarge as exc:
                    raise UpstreamError(
                        str(exc), partial_text=assembler.text, conversation=conversation
                    ) from None
                if sse_events:
                    got_event = True
                    last_event = loop.time()
                for sse in sse_events:
                    for event in assembler.handle(sse.data):
                        yield event
                    if assembler.finished:
                        clean_end = await drain(response, chunk_was_eof=not chunk)
                        return
                if not chunk:
                    # The end of the stream also completes an answer (§3.1), if there is one.
                    if assembler.text:
                        clean_end = True
                        yield Finished(assembler.text, conversation)
                        return
                    raise StreamInterrupted(
                        "MiniMax Agent closed the stream without an answer",
                        conversation=conversation,
                    )
        finally:
            if clean_end:
                response.release()
            else:
                response.close()

    async def _title_quietly(self, auth: AgentAuth, conversation: Conversation) -> str:
        """A new session's title, if the upstream has one at once; the final message does not
        wait long for it (`/title` reads it again later)."""
        try:
            async with asyncio.timeout(TITLE_WAIT):
                return await self.title(auth, conversation)
        except TimeoutError:
            return ""
        except UpstreamFailure as exc:
            log.info("no title for session %s: %s", conversation.chat_id, exc.message)
            return ""

    # --- signed calls ----------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        auth: AgentAuth,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        with_user_id: bool = True,
    ) -> dict[str, Any]:
        """A signed JSON call on the API host; the payload (`data` of the /v1/api envelope)."""
        raw = _json(body) if body is not None else None
        ms = self._now_ms()
        query = self._query(auth, ms, with_user_id=with_user_id)
        target = f"{path}?{query}"
        headers = self._headers(auth, ms, raw, target=target)  # the API host signs relative
        try:
            async with asyncio.timeout(self._timeouts.first_event):
                response = await self.session.request(
                    method,
                    self.api_url + target,
                    data=raw.encode() if raw is not None else None,
                    headers=headers,
                    proxy=self._proxy,
                    allow_redirects=False,
                )
                async with response:
                    if response.status != 200 or response.content_type != "application/json":
                        raise await _refusal(response)
                    payload = await response.json(content_type=None)
        except TimeoutError:
            raise UpstreamUnavailable(
                f"MiniMax Agent did not answer within {self._timeouts.first_event:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(
                f"cannot reach MiniMax Agent: {describe_error(exc)}"
            ) from None
        except ValueError:
            raise ProtocolChanged("MiniMax Agent answered with malformed JSON") from None
        if not isinstance(payload, dict):
            raise ProtocolChanged("MiniMax Agent answered JSON that is not an object")
        _check_envelope(payload)
        data = payload.get("data", payload)
        return data if isinstance(data, dict) else payload

    def _now_ms(self) -> int:
        # Whole seconds, as the web bundle signs (§4.1: `Date.parse(new Date())`).
        return int(self._clock()) * 1000

    def _query(self, auth: AgentAuth, ms: int, *, with_user_id: bool = True) -> str:
        """The web client's 22 parameters in their order (§3.0); empty values are left out."""
        chinese = auth.region == "cn"
        os_name, platform = _platform(auth.user_agent)
        params = [
            ("device_platform", "web"),
            ("biz_id", "3"),
            ("app_id", "3001"),
            ("version_code", "22201"),
            ("unix", str(ms)),
            ("timezone_offset", "28800" if chinese else "0"),
            ("sys_language", "zh" if chinese else "en"),
            ("lang", "zh" if chinese else "en"),
            ("uuid", auth.uuid),
            ("device_id", auth.device_id),
            ("os_name", os_name),
            ("browser_name", "Chrome"),
            ("device_memory", "8"),
            ("cpu_core_num", "8"),
            ("browser_language", "zh-CN" if chinese else "en-US"),
            ("browser_platform", platform),
            ("user_id", auth.real_user_id if with_user_id else ""),
            ("screen_width", "1920"),
            ("screen_height", "1080"),
            ("token", auth.token),
            ("client", "web"),
            ("region", "cn" if chinese else "en"),
        ]
        return urlencode([(name, value) for name, value in params if value])

    def _headers(
        self, auth: AgentAuth, ms: int, body: str | None, *, target: str
    ) -> dict[str, str]:
        seconds = ms // 1000
        origin = _origin(self.api_url)
        headers = {
            "token": auth.token,
            "x-timestamp": str(seconds),
            "x-signature": x_signature(seconds, body or ""),
            "yy": yy(target, body, ms),
            "user-agent": auth.user_agent,
            "origin": origin,
            "referer": origin + "/",
        }
        if body is not None:
            headers["content-type"] = "application/json"
        if auth.cookies:
            headers["cookie"] = "; ".join(f"{name}={value}" for name, value in auth.cookies.items())
        return headers


def agent_auth(credentials: Credentials) -> AgentAuth:
    if not isinstance(credentials, AgentAuth):
        raise AuthRejected(
            f"the stored login is for {credentials.UPSTREAM}, not MiniMax Agent: log in again"
        )
    return credentials


def _pick_agent(agents: object) -> str:
    """The numeric id (`name`) of the `mavis` agent the web app opens sessions with, else of the
    `general` one (§3.1 step 0); a role word would make sessions without ids."""
    if not isinstance(agents, list):
        raise ProtocolChanged("MiniMax Agent listed no agents")
    by_role = {
        str(agent.get("agent_role")): str(agent.get("name"))
        for agent in agents
        if isinstance(agent, dict) and str(agent.get("name", "")).isdigit()
    }
    for role in ("mavis", "general"):
        if role in by_role:
            return by_role[role]
    raise ProtocolChanged("MiniMax Agent has no mavis or general agent for this account")


def _session_id(data: dict[str, Any]) -> str:
    """`session_id` at the top, or under `data`/`session` (sources differ, §3.1)."""
    for holder in (data, data.get("data"), data.get("session")):
        if isinstance(holder, dict):
            value = holder.get("session_id")
            if isinstance(value, str | int) and str(value):
                return str(value)
    return ""


def _check_envelope(payload: dict[str, Any]) -> None:
    """`statusInfo` (/v1/api) or `base_resp` (/minimax-cloud): code 0 is success."""
    for key, code_key, message_key in (
        ("statusInfo", "code", "message"),
        ("base_resp", "status_code", "status_msg"),
    ):
        envelope = payload.get(key)
        if not isinstance(envelope, dict):
            continue
        code = envelope.get(code_key)
        if code in (None, 0, "0"):
            continue
        message = str(envelope.get(message_key) or f"error {code}")
        numeric = int(code) if str(code).lstrip("-").isdigit() else None
        if numeric == NOT_INITIALISED:
            raise _NotInitialised
        if numeric in (SESSION_INVALID, 1000021, 1000022, 1000023):
            raise AuthRejected(f"MiniMax Agent refused the login: {message}")
        raise UpstreamError(f"MiniMax Agent: {message}", code=numeric)


async def _refusal(response: aiohttp.ClientResponse) -> Exception:
    """What a non-200 (or non-JSON) answer means (§5)."""
    status = response.status
    try:
        async with asyncio.timeout(10):
            raw = await response.content.read(64 * 1024)
    except (TimeoutError, aiohttp.ClientError):
        raw = b""
    text = raw.decode("utf-8", errors="replace")
    html = response.content_type == "text/html" or text.lstrip().lower().startswith(
        ("<!doc", "<html")
    )
    if NOT_INITIALISED_TEXT in text:
        return _NotInitialised()
    if status == 401:
        return AuthRejected(
            EMPTY_401
            if not text.strip()
            else f"MiniMax Agent refused the login (401): {text[:200]}",
            status=401,
        )
    if status == 403 and html:
        return UpstreamUnavailable("MiniMax Agent answered with a bot challenge page (403)")
    if status == 403:
        return AuthRejected(f"MiniMax Agent refused the login (403): {text[:200]}", status=403)
    if status == 409:
        return _SessionBusy()
    if status == 429:
        return RateLimited(
            "MiniMax Agent is rate limiting this account",
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )
    if status == 400 and "invalid signature" in text.lower():
        return SignatureRejected("MiniMax Agent rejected the request signature")
    if status == 407:
        return UpstreamUnavailable("the proxy asked for credentials (407)")
    if status >= 500:
        return UpstreamUnavailable(f"MiniMax Agent is unavailable ({status})")
    if html:
        return ProtocolChanged(
            f"MiniMax Agent answered {status} with an HTML page where JSON was expected: "
            "its web protocol has probably changed"
        )
    message = _error_text(text) or f"HTTP {status}"
    return UpstreamError(f"MiniMax Agent answered {status}: {message}")


NOT_INITIALISED_TEXT = str(NOT_INITIALISED)


def _error_text(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:200]
    if not isinstance(data, dict):
        return ""
    base = data.get("base_resp") if isinstance(data.get("base_resp"), dict) else {}
    assert isinstance(base, dict)
    for value in (data.get("error"), data.get("message"), base.get("status_msg")):
        if isinstance(value, str) and value:
            return value[:200]
    return ""


def _retry_after(header: str | None) -> float | None:
    try:
        return max(0.0, float(header)) if header is not None else None
    except ValueError:
        return None


def _json(body: dict[str, Any]) -> str:
    """As JSON.stringify writes it: compact, UTF-8 as is (the signature covers these bytes)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _platform(user_agent: str) -> tuple[str, str]:
    if "Windows" in user_agent:
        return "Windows", "Win32"
    if "Mac OS" in user_agent or "Macintosh" in user_agent:
        return "Mac", "MacIntel"
    return "Linux", "Linux x86_64"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
