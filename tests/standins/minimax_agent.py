"""A MiniMax Agent web-chat stand-in ("minimax-cloud", Gen C) on loopback; two hosts, strict.

An independent reading of the protocol reference (minimax-agent-protocol.md, sections 1-5 and 8):
nothing comes from `bot`, so a misreading in the bot shows up here as a refusal.

Two servers, like the real site:
- the agent host (`api_url`): `/v1/api/...` account calls, `/minimax-cloud/api/v1/...` REST
  calls, the login imitation page at `/`, and the web app's catch-all (200 HTML) for any other
  path (one without the `/minimax-cloud/api/v1/` prefix, say);
- the agent-stream host (`stream_url`, another port): the message POST, answered with SSE deltas.
  A message POST sent to the agent host gets a 404 JSON here (the real one answers it, without
  tools; the stand-in is strict so that the bot's choice of host is tested).

Every `/minimax-cloud/api/v1/`, `/matrix/api/v1/` and `/v1/api/` call is checked like this:
1. the query names in the §3.0 order (`QUERY_ORDER`), no unknown or repeated names; only the
   names in `OPTIONAL_QUERY` may be absent; the fixed values of §3.0 (`FIXED_QUERY`); `unix` in
   milliseconds; `uuid` a hyphenated UUID; `x-timestamp`, `x-signature` and `yy` as in §4.1.
   Anything wrong: 400 text `invalid signature`. `yy` signs the relative path+query on the agent
   host; on the message POST the absolute `stream_url` target, or the relative one (§4.1a says
   both work); `AgentRequest.yy_target` tells which one matched;
2. the `token` header equal to the `token` query value, a token in `valid_tokens`, `user_id`
   equal to its realUserID (not needed on GET /v1/api/user/info), and `region` matching the
   stand-in's region (intl: "en", cn: "cn"; a stand-in choice that models "a token of one region
   is refused by the other"). Anything wrong: 401 with an empty body. Tokens never expire by
   their `exp`; revoke one to imitate expiry;
3. on `/minimax-cloud/` paths a numeric `device_id` (else the 400 JSON of §5).

Timing choices:
- `AgentFault.NOT_INITIALISED` does not wait in the message-fault queue: each one makes the NEXT
  session create (whoever sends it) forget its account's initialisation, which then gets the 500
  `[1400010501]` until that account calls GET /config again.
- All other faults are consumed by the next message POST. The HTTP-status ones (401, 409, HTML,
  403, 502, 429) answer before any check; the stream ones are put back if the POST is refused.
- A turn's user content is appended to `AgentSession.turns` when the message POST is accepted
  (before streaming, so the default answer can count it), even if the stream then fails. The
  session title is set when a turn completes, from the first turn: `title_for(turns[0])`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import hashlib
import hmac
import itertools
import json
import random
import re
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SALT = "I*7Cf%WZ#S&%1RlZJ&C2"
QUERY_ORDER: tuple[str, ...] = (
    "device_platform",
    "biz_id",
    "app_id",
    "version_code",
    "unix",
    "timezone_offset",
    "sys_language",
    "lang",
    "uuid",
    "device_id",
    "os_name",
    "browser_name",
    "device_memory",
    "cpu_core_num",
    "browser_language",
    "browser_platform",
    "user_id",
    "screen_width",
    "screen_height",
    "token",
    "client",
    "region",
)
# Browser-fingerprint values a client may not know; empty values are dropped, not sent as `key=`.
OPTIONAL_QUERY = frozenset(
    {
        "os_name",
        "browser_name",
        "device_memory",
        "cpu_core_num",
        "browser_language",
        "browser_platform",
        "screen_width",
        "screen_height",
    }
)
FIXED_QUERY = {"device_platform": "web", "biz_id": "3", "app_id": "3001", "client": "web"}
REGION_QUERY = {"intl": "en", "cn": "cn"}
SIGNED_PREFIXES = ("/minimax-cloud/api/v1/", "/matrix/api/v1/", "/v1/api/")
USER_INFO_PATH = "/v1/api/user/info"
RENEWAL_PATH = "/v1/api/user/renewal"
CLOUD = "/minimax-cloud/api/v1"
SESSION_CREATE_RE = re.compile(rf"{CLOUD}/agent/([^/]+)/session")
SESSION_RE = re.compile(rf"{CLOUD}/session/([^/]+)")
MESSAGE_RE = re.compile(rf"{CLOUD}/session/([^/]+)/message")
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
CONTEXT_LIMITS = {"MiniMax-M3": 450_000}
THIRTY_DAYS = 30 * 24 * 3600

SPA_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MiniMax Agent</title>
<script type="module" crossorigin src="/assets/index-3f9a2c.js"></script></head>
<body><div id="root"></div></body></html>
"""

CHALLENGE_PAGE = """<!DOCTYPE html>
<html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="refresh" content="390"></head>
<body><div class="main-wrapper"><h1>agent.minimax.io</h1>
<h2>Verifying you are human. This may take a few seconds.</h2>
<noscript>Enable JavaScript and cookies to continue</noscript></div></body></html>
"""

BAD_GATEWAY_PAGE = """<html><head><title>502 Bad Gateway</title></head>
<body><center><h1>502 Bad Gateway</h1></center></body></html>
"""

LOGIN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>MiniMax Agent</title></head>
<body>
<div id="status">Sign in to MiniMax Agent</div>
<script>
  const loginToken = __LOGIN__;
  if (loginToken === null || localStorage.getItem("_token") !== loginToken) {
    localStorage.setItem("_token", __GUEST__);
  }
  localStorage.setItem("UNIQUE_USER_ID", __UUID__);
  sessionStorage.setItem("tab_device_id", __DEVICE__);
  function logIn() {
    localStorage.setItem("UNIQUE_USER_ID", __UUID__);
    sessionStorage.setItem("tab_device_id", __DEVICE__);
    localStorage.setItem("_token", loginToken);
    document.getElementById("status").textContent = "Logged in";
  }
  const delay = __DELAY__;
  if (loginToken !== null && delay !== null) { setTimeout(logIn, delay); }
</script>
</body></html>
"""


class AgentFault(enum.Enum):
    UNAUTHORIZED = "401 with an empty body on the next message POST"
    SESSION_BUSY = "409 on the next message POST"
    NOT_INITIALISED = (
        "the server forgets the account's initialisation: next session create gets 500 [1400010501]"
    )
    HTML_PAGE = "200 text/html (the SPA catch-all) on the next message POST"
    CHALLENGE_403 = "403 Cloudflare 'Just a moment...' HTML page on the next message POST"
    SERVER_ERROR = "502 on the next message POST"
    RATE_LIMITED = "429 with Retry-After: 7 on the next message POST"
    QUOTA_ERROR = (
        "stream: after one answer chunk, a type-2 agent_message with finish_reason 'error' and"
        " msg_content = quota text"
    )
    CHUNK_ERROR = (
        "stream: after one answer chunk, a type-6 chunk with finish true and finish_reason 'error'"
    )
    DISCONNECT_MID_STREAM = "stream: connection aborted after two answer chunks"
    SILENT_MID_STREAM = (
        "stream: one answer chunk, then nothing (connection held open until the client leaves)"
    )
    MALFORMED_FRAME = (
        "stream: one 'data:' line that is not JSON among normal frames (the answer still completes)"
    )
    REPEAT_WHOLE_ANSWER = (
        "stream: the whole answer re-sent once as a single chunk just before finish (a real quirk)"
    )


STATUS_FAULTS = frozenset(
    {
        AgentFault.UNAUTHORIZED,
        AgentFault.SESSION_BUSY,
        AgentFault.HTML_PAGE,
        AgentFault.CHALLENGE_403,
        AgentFault.SERVER_ERROR,
        AgentFault.RATE_LIMITED,
    }
)


@dataclass
class AgentRequest:
    method: str
    host: str  # "api" or "stream"
    path: str
    query: list[tuple[str, str]]  # in the order received
    headers: dict[str, str]  # lower-case names
    body: str
    status: int = 0  # what the stand-in answered
    outcome: str = "pending"  # answered | refused | disconnected | pending
    chunks: list[tuple[float, str]] = field(default_factory=list)  # (time, cumulative answer)
    yy_target: str = (
        ""  # "absolute" | "relative" once yy matched (also headers[x-standin-yy-target])
    )

    def param(self, name: str) -> str | None:
        """The first value of a query parameter, or None."""
        return next((value for key, value in self.query if key == name), None)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class AgentSession:
    session_id: str
    account: str  # realUserID that owns it
    model: dict[str, Any]
    turns: list[str] = field(default_factory=list)  # user contents, in order
    title: str = ""
    agent_id: str = ""
    turn_ids: list[str] = field(default_factory=list)  # the `turn_id` of each accepted turn


@dataclass
class AgentAccount:
    real_user_id: str
    user_id: str  # the JWT's user.id: a different 18-digit number
    name: str
    device_id: str  # the JWT's user.deviceID


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def encode_uri_component(text: str) -> str:
    """JavaScript's encodeURIComponent."""
    return urllib.parse.quote(text, safe="-_.!~*'()")


def expected_signature(timestamp: str, body: str) -> str:
    """x-signature (§4.1): md5(seconds + SALT + body), body "" for GET."""
    return _md5(timestamp + SALT + body)


def expected_yy(target: str, body_or_braces: str, ms: int | str) -> str:
    """yy (§4.1): md5(encodeURIComponent(target) + "_" + body ("{}" for GET) + md5(ms) + "ooui")."""
    return _md5(encode_uri_component(target) + "_" + body_or_braces + _md5(str(ms)) + "ooui")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_payload(token: str) -> dict[str, Any]:
    """The payload of a token this stand-in minted (no verification)."""
    part = token.split(".")[1]
    payload: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return payload


def _split(text: str, count: int) -> list[str]:
    """`text` as at most `count` consecutive pieces, cut at character boundaries; at least one."""
    if not text:
        return [""]
    step = max(1, -(-len(text) // max(1, count)))
    return [text[start : start + step] for start in range(0, len(text), step)]


def _digits(rng: random.Random, count: int) -> str:
    return str(rng.randrange(10 ** (count - 1), 10**count))


def _cloud_error(status: int, code: int, message: str, **extra: Any) -> web.Response:
    body = {**extra, "base_resp": {"status_code": code, "status_msg": message}}
    return web.json_response(body, status=status)


def _v1_error(status: int, code: int, message: str) -> web.Response:
    body = {"statusInfo": {"code": code, "message": message}, "data": None}
    return web.json_response(body, status=status)


def _invalid_signature() -> web.Response:
    return web.Response(status=400, text="invalid signature")


def _unauthorized() -> web.Response:
    return web.Response(status=401)


def _html(page: str, status: int = 200) -> web.Response:
    return web.Response(status=status, text=page, content_type="text/html")


@dataclass
class _Caller:
    token: str
    account: AgentAccount


class MiniMaxAgentStandIn:
    def __init__(self, region: str = "intl") -> None:
        if region not in REGION_QUERY:
            raise ValueError(f"region must be one of {sorted(REGION_QUERY)}")
        self.region = region
        self._rng = random.Random()
        self._secret = self._rng.randbytes(32)
        self._serial = itertools.count(1)
        self._session_ids = itertools.count(387_000_000_000_001)
        self.api_url = ""
        self.stream_url = ""
        self.accounts: dict[str, AgentAccount] = {}
        self.valid_tokens: dict[str, str] = {}  # token -> realUserID
        self.sessions: dict[str, AgentSession] = {}
        self.requests: list[AgentRequest] = []
        self.initialised: set[str] = set()  # realUserIDs that have called GET /config
        self.general_agent_id = _digits(self._rng, 15)
        self.mavis_agent_id = _digits(self._rng, 15)
        while self.mavis_agent_id == self.general_agent_id:
            self.mavis_agent_id = _digits(self._rng, 15)
        self.models: list[str] = ["MiniMax-M3", "MiniMax-M2.7", "MiniMax-M2.7-highspeed"]
        self.answers: deque[str] = deque()
        self.answer_for: Callable[[str], str] | None = None
        self.reasoning: str | None = None  # "" or None: no thinking frames
        self.chunk_count = 4
        self.chunks_for: Callable[[str], int] | None = None  # how many chunks an answer takes
        self.chunk_delay = 0.0  # between answer chunks
        self.first_chunk_delay = 0.0  # before the first answer chunk
        self.heartbeat = True
        self.no_space_after_colon = False
        self.quota_text = "Token Plan quota exhausted (2056): daily credits used up"
        self.retry_after = 7
        self.faults: deque[AgentFault] = deque()  # for the next message POSTs
        self.forget_initialisation = 0  # NOT_INITIALISED faults waiting for a session create
        # The login imitation page.
        self.login_after: float | None = 1.0  # seconds until the simulated login; None: never
        self.login_real_user_id = ""  # "": the first added account (one is made if there is none)
        self.guest_token = "guest.token.value"
        self.token_as_json = False  # `_token` holds {"token": jwt, "uuid": uuid} as a JSON string
        self.page_uuid = str(uuid.uuid4())  # what the page puts in UNIQUE_USER_ID
        self.page_device_id = _digits(self._rng, 8)  # what it puts in tab_device_id
        self.page_login_token: str | None = None  # set when a page that will log in is served
        self.page_visits = 0
        self.renewals = 0
        self._busy: set[str] = set()  # session ids with a turn streaming
        self._runners: list[web.AppRunner] = []

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        api = web.Application()
        api.router.add_route("*", "/{tail:.*}", self._api_host)
        stream = web.Application()
        stream.router.add_route("*", "/{tail:.*}", self._stream_host)
        self.api_url = await self._serve(api)
        self.stream_url = await self._serve(stream)

    async def _serve(self, app: web.Application) -> str:
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.cleanup()

    # ---- test controls ---------------------------------------------------------------------

    def add_account(
        self, real_user_id: str, *, name: str = "Test User", exp: int | None = None
    ) -> str:
        """Register an account (or rename it) and return a fresh token for it."""
        account = self.accounts.get(real_user_id)
        if account is None:
            user_id = _digits(self._rng, 18)
            while user_id == real_user_id:
                user_id = _digits(self._rng, 18)
            account = AgentAccount(real_user_id, user_id, name, _digits(self._rng, 18))
            self.accounts[real_user_id] = account
        account.name = name
        return self._mint(account, exp if exp is not None else int(time.time()) + THIRTY_DAYS)

    def make_token(self, real_user_id: str, *, exp: int) -> str:
        """Another valid token for an existing account."""
        if real_user_id not in self.accounts:
            raise KeyError(f"no account {real_user_id!r}: add_account first")
        return self._mint(self.accounts[real_user_id], exp)

    def revoke(self, token: str) -> None:
        self.valid_tokens.pop(token, None)

    def fail_next(self, *faults: AgentFault) -> None:
        for fault in faults:
            if fault is AgentFault.NOT_INITIALISED:
                self.forget_initialisation += 1
            else:
                self.faults.append(fault)

    def answer_next(self, *texts: str) -> None:
        self.answers.extend(texts)

    def title_for(self, first_user_content: str) -> str:
        return f"Chat about {first_user_content[:20]}"

    @property
    def message_posts(self) -> list[AgentRequest]:
        """The message POSTs that reached the stream host, in order."""
        return [
            received
            for received in self.requests
            if received.host == "stream" and MESSAGE_RE.fullmatch(received.path)
        ]

    async def wait_message_outcome(self, index: int, timeout: float = 30.0) -> str:
        """Wait until the index-th message POST is no longer pending; its outcome."""
        async with asyncio.timeout(timeout):
            while True:
                posts = self.message_posts
                if len(posts) > index and posts[index].outcome != "pending":
                    return posts[index].outcome
                await asyncio.sleep(0.01)

    def _mint(self, account: AgentAccount, exp: int) -> str:
        header = {"alg": "HS256", "typ": "JWT"}
        payload = {
            "user": {"id": account.user_id, "name": account.name, "deviceID": account.device_id},
            "exp": exp,
            "iat": int(time.time()),
            "jti": str(next(self._serial)),
        }
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, payload)
        )
        mac = hmac.new(self._secret, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{_b64url(mac)}"
        self.valid_tokens[token] = account.real_user_id
        return token

    # ---- request plumbing ------------------------------------------------------------------

    async def _record(self, request: web.Request, host: str) -> AgentRequest:
        raw = await request.read()
        raw_query = request.raw_path.partition("?")[2]
        received = AgentRequest(
            method=request.method,
            host=host,
            path=request.path,
            query=urllib.parse.parse_qsl(raw_query, keep_blank_values=True),
            headers={name.lower(): value for name, value in request.headers.items()},
            body=raw.decode("utf-8", errors="replace"),
        )
        self.requests.append(received)
        return received

    @staticmethod
    def _finish(received: AgentRequest, response: web.Response) -> web.Response:
        received.status = response.status
        received.outcome = "answered" if 200 <= response.status < 300 else "refused"
        return response

    def _check(
        self, request: web.Request, received: AgentRequest, *, stream: bool
    ) -> _Caller | web.Response:
        """The signing, identity and device checks; the caller, or the refusal."""
        raw_path, _, raw_query = request.raw_path.partition("?")
        identity_optional = request.method == "GET" and request.path == USER_INFO_PATH
        params = dict(received.query)
        if not self._query_in_order(received.query, identity_optional=identity_optional):
            return _invalid_signature()
        unix = params["unix"]
        if not unix.isdigit() or len(unix) < 13 or not UUID_RE.fullmatch(params["uuid"]):
            return _invalid_signature()
        timestamp = received.headers.get("x-timestamp", "")
        if timestamp != str(int(unix) // 1000):
            return _invalid_signature()
        is_get = request.method == "GET"
        body = "" if is_get else received.body
        if received.headers.get("x-signature") != expected_signature(timestamp, body):
            return _invalid_signature()
        relative = f"{raw_path}?{raw_query}"
        targets = [("relative", relative)]
        if stream:
            targets.insert(0, ("absolute", self.stream_url + relative))
        yy = received.headers.get("yy")
        matched = next(
            (
                kind
                for kind, target in targets
                if yy == expected_yy(target, "{}" if is_get else received.body, unix)
            ),
            None,
        )
        if matched is None:
            return _invalid_signature()
        received.yy_target = matched
        received.headers["x-standin-yy-target"] = matched

        token = params["token"]
        real_user_id = self.valid_tokens.get(token)
        if received.headers.get("token") != token or real_user_id is None:
            return _unauthorized()
        if not identity_optional and params.get("user_id") != real_user_id:
            return _unauthorized()
        if params["region"] != REGION_QUERY[self.region]:
            return _unauthorized()
        if request.path.startswith(CLOUD + "/") and not params["device_id"].isdigit():
            return web.json_response(
                {
                    "error": "internal error",
                    "code": "UNEXPECTED_ERROR",
                    "base_resp": {"status_code": 1406011050, "status_msg": "invalid device_id"},
                },
                status=400,
            )
        return _Caller(token, self.accounts[real_user_id])

    @staticmethod
    def _query_in_order(query: list[tuple[str, str]], *, identity_optional: bool) -> bool:
        names = [name for name, _ in query]
        if len(set(names)) != len(names) or any(name not in QUERY_ORDER for name in names):
            return False
        positions = [QUERY_ORDER.index(name) for name in names]
        if positions != sorted(positions):
            return False
        values = dict(query)
        for name in QUERY_ORDER:
            optional = name in OPTIONAL_QUERY or (identity_optional and name == "user_id")
            if not optional and not values.get(name):
                return False
        if any(values[name] != value for name, value in FIXED_QUERY.items()):
            return False
        try:
            int(values["timezone_offset"])
        except ValueError:
            return False
        return True

    # ---- the agent host --------------------------------------------------------------------

    async def _api_host(self, request: web.Request) -> web.Response:
        received = await self._record(request, "api")
        path = request.path
        if path == "/" and request.method == "GET":
            return self._finish(received, self._login_page())
        if not path.startswith(SIGNED_PREFIXES):
            return self._finish(received, _html(SPA_PAGE))  # the web app's static catch-all
        checked = self._check(request, received, stream=False)
        if isinstance(checked, web.Response):
            return self._finish(received, checked)
        return self._finish(received, self._api_route(request.method, path, received, checked))

    def _api_route(
        self, method: str, path: str, received: AgentRequest, caller: _Caller
    ) -> web.Response:
        account = caller.account
        if method == "GET" and path == USER_INFO_PATH:
            info = {"realUserID": account.real_user_id, "userID": account.user_id}
            return self._v1_ok({"userInfo": {**info, "name": account.name}})
        if method == "POST" and path == RENEWAL_PATH:
            if not isinstance(_json_or_none(received.body), dict):
                return _v1_error(400, 1000001, "invalid params")
            self.renewals += 1
            token = self._mint(account, int(time.time()) + THIRTY_DAYS)
            return self._v1_ok({"token": token})
        if path.startswith("/v1/api/"):
            return _v1_error(404, 1000404, "not found")
        if path.startswith("/matrix/"):
            return _cloud_error(404, 1404, "not found")
        if method == "GET" and path == f"{CLOUD}/config":
            self.initialised.add(account.real_user_id)
            return self._cloud_ok({"models": [self._model_entry(m) for m in self.models]})
        if method == "GET" and path == f"{CLOUD}/agent":
            return self._cloud_ok({"agents": self._agents()})
        if method == "GET" and path == f"{CLOUD}/channel/connections":
            return self._cloud_ok({"connections": []})
        match = SESSION_CREATE_RE.fullmatch(path)
        if method == "POST" and match:
            return self._create_session(match[1], received, account)
        match = SESSION_RE.fullmatch(path)
        if method == "GET" and match:
            session = self.sessions.get(match[1])
            if session is None or session.account != account.real_user_id:
                return _cloud_error(404, 1404, "session not found")
            return self._cloud_ok({"session": self._session_view(session)})
        if MESSAGE_RE.fullmatch(path):
            return _cloud_error(404, 1404, "not found (stand-in: messages go to the stream host)")
        return _cloud_error(404, 1404, "not found")

    def _create_session(
        self, agent_id: str, received: AgentRequest, account: AgentAccount
    ) -> web.Response:
        body = _json_or_none(received.body)
        if not isinstance(body, dict):
            return _cloud_error(400, 1400, "invalid request body")
        model = body.get("model")
        problem = self._model_problem(model)
        if problem is not None:
            return _cloud_error(400, 1400, problem)
        assert isinstance(model, dict)
        if self.forget_initialisation:
            self.forget_initialisation -= 1
            self.initialised.discard(account.real_user_id)
        if account.real_user_id not in self.initialised:
            message = "Environment Variables not configured"
            return _cloud_error(500, 1400010501, message, error=f"[1400010501] {message}")
        if not agent_id.isdigit():
            return self._cloud_ok({"agent_name": agent_id.capitalize()})
        names = {self.general_agent_id: "General", self.mavis_agent_id: "Mavis"}
        if agent_id not in names:
            return _cloud_error(404, 1404, "agent not found")
        session_id = str(next(self._session_ids))
        self.sessions[session_id] = AgentSession(
            session_id=session_id,
            account=account.real_user_id,
            model=dict(model),
            agent_id=agent_id,
        )
        return self._cloud_ok({"agent_name": names[agent_id], "session_id": session_id})

    def _model_problem(self, model: Any) -> str | None:
        if not isinstance(model, dict):
            return "model must be an object"
        if model.get("provider_id") != "minimax":
            return "unknown provider_id"
        if model.get("model_id") not in self.models:
            return f"unknown model_id: {model.get('model_id')}"
        if "reasoning" in model and not isinstance(model["reasoning"], bool):
            return "reasoning must be a boolean"
        return None

    def _model_entry(self, model_id: str) -> dict[str, Any]:
        return {
            "model_id": model_id,
            "display_name": model_id,
            "context_limit": CONTEXT_LIMITS.get(model_id, 204_800),
            "supported_variants": ["", "thinking"],
            "thinking_config": {"enabled": True},
        }

    def _agents(self) -> list[dict[str, Any]]:
        root = "387000000000000"
        return [
            {
                "name": self.general_agent_id,
                "agent_role": "general",
                "display_name": "General",
                "root_session_id": root,
            },
            {
                "name": self.mavis_agent_id,
                "agent_role": "mavis",
                "display_name": "Mavis",
                "root_session_id": root,
            },
        ]

    def _session_view(self, session: AgentSession) -> dict[str, Any]:
        model_id = str(session.model.get("model_id", ""))
        reasoning = bool(session.model.get("reasoning", False))
        names = {self.general_agent_id: "General", self.mavis_agent_id: "Mavis"}
        return {
            "session_id": session.session_id,
            "agent_name": names.get(session.agent_id, "Mavis"),
            "title": session.title,
            "status": {"status_type": 0, "message": ""},
            "model": {
                **session.model,
                "variant": "thinking" if reasoning else "",
                "context_limit": CONTEXT_LIMITS.get(model_id, 204_800),
                "supported_variants": ["", "thinking"],
                "reasoning": reasoning,
            },
            "team_mode": False,
            "session_type": 0,
        }

    @staticmethod
    def _cloud_ok(body: dict[str, Any]) -> web.Response:
        return web.json_response({**body, "base_resp": {"status_code": 0, "status_msg": "success"}})

    @staticmethod
    def _v1_ok(data: dict[str, Any]) -> web.Response:
        return web.json_response({"statusInfo": {"code": 0, "message": "success"}, "data": data})

    def _login_page(self) -> web.Response:
        """Like agent.minimax.io: a guest `_token` at once, the account's JWT after the login."""
        self.page_visits += 1
        token: str | None = None
        if self.login_after is not None:
            real_user_id = self.login_real_user_id or next(iter(self.accounts), "")
            real_user_id = real_user_id or _digits(self._rng, 18)
            if real_user_id not in self.accounts:
                self.add_account(real_user_id)
            token = self.page_login_token
            if token is None or self.valid_tokens.get(token) != real_user_id:
                token = self._mint(self.accounts[real_user_id], int(time.time()) + THIRTY_DAYS)
                self.page_login_token = token

        def stored(value: str) -> str:
            if self.token_as_json:
                value = json.dumps({"token": value, "uuid": self.page_uuid}, separators=(",", ":"))
            return _js(value)

        delay = "null" if self.login_after is None else str(int(self.login_after * 1000))
        page = (
            LOGIN_PAGE.replace("__LOGIN__", "null" if token is None else stored(token))
            .replace("__GUEST__", stored(self.guest_token))
            .replace("__UUID__", _js(self.page_uuid))
            .replace("__DEVICE__", _js(self.page_device_id))
            .replace("__DELAY__", delay)
        )
        return _html(page)

    # ---- the agent-stream host -------------------------------------------------------------

    async def _stream_host(self, request: web.Request) -> web.StreamResponse:
        received = await self._record(request, "stream")
        match = MESSAGE_RE.fullmatch(request.path)
        if request.method != "POST" or match is None:
            return self._finish(received, web.Response(status=404, text="404 page not found"))
        fault = self.faults.popleft() if self.faults else None
        if fault in STATUS_FAULTS:
            assert fault is not None
            return self._finish(received, self._fault_response(fault))
        accepted = self._accept_message(request, received, match[1])
        if isinstance(accepted, web.Response):
            if fault is not None:
                self.faults.appendleft(fault)  # a refused POST does not use up a stream fault
            return self._finish(received, accepted)
        session, content, turn_id = accepted
        session.turns.append(content)
        session.turn_ids.append(turn_id)
        if self.answers:
            text = self.answers.popleft()
        elif self.answer_for is not None:
            text = self.answer_for(content)
        else:
            text = f"You said: {content} (message {len(session.turns)} in this session)"
        return await self._stream(request, received, session, content, text, fault)

    def _accept_message(
        self, request: web.Request, received: AgentRequest, session_id: str
    ) -> tuple[AgentSession, str, str] | web.Response:
        checked = self._check(request, received, stream=True)
        if isinstance(checked, web.Response):
            return checked
        session = self.sessions.get(session_id)
        if session is None or session.account != checked.account.real_user_id:
            return _cloud_error(404, 1404, "session not found")
        body = _json_or_none(received.body)
        if not isinstance(body, dict):
            return _cloud_error(400, 1400, "invalid request body")
        content = body.get("content")
        if not isinstance(content, str):
            return _cloud_error(400, 1400, "content is required")
        problem = self._model_problem(body.get("model"))
        if problem is not None:
            return _cloud_error(400, 1400, problem)
        turn_id = body.get("turn_id", "")
        if not isinstance(turn_id, str):
            return _cloud_error(400, 1400, "turn_id must be a string")
        if session_id in self._busy:
            return _cloud_error(409, 1409, "session is busy")
        return session, content, turn_id

    def _fault_response(self, fault: AgentFault) -> web.Response:
        if fault is AgentFault.UNAUTHORIZED:
            return _unauthorized()
        if fault is AgentFault.SESSION_BUSY:
            return _cloud_error(409, 1409, "session is busy")
        if fault is AgentFault.HTML_PAGE:
            return _html(SPA_PAGE)
        if fault is AgentFault.CHALLENGE_403:
            response = _html(CHALLENGE_PAGE, status=403)
            response.headers["cf-mitigated"] = "challenge"
            response.headers["Server"] = "cloudflare"
            return response
        if fault is AgentFault.SERVER_ERROR:
            return _html(BAD_GATEWAY_PAGE, status=502)
        response = web.Response(status=429, text="Too Many Requests")
        response.headers["Retry-After"] = str(self.retry_after)
        return response

    async def _stream(
        self,
        request: web.Request,
        received: AgentRequest,
        session: AgentSession,
        content: str,
        text: str,
        fault: AgentFault | None,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        self._busy.add(session.session_id)
        try:
            await response.prepare(request)
            received.status = 200
            user = {"role": "user", "msg_content": content}
            await self._frame(response, {"type": 2, "agent_message": user})
            if self.heartbeat:
                await self._frame(response, {"type": 10})
            reasoning = self.reasoning or ""
            if reasoning:
                for delta in _split(reasoning, min(3, len(reasoning))):
                    await self._frame(response, _chunk("", thinking=delta))
            if self.first_chunk_delay:
                await asyncio.sleep(self.first_chunk_delay)
            count = self.chunks_for(text) if self.chunks_for is not None else self.chunk_count
            sent = ""
            for index, delta in enumerate(_split(text, count)):
                if index and self.chunk_delay:
                    await asyncio.sleep(self.chunk_delay)
                await self._frame(response, _chunk(delta))
                sent += delta
                received.chunks.append((time.monotonic(), sent))
                if index == 0 and fault is AgentFault.MALFORMED_FRAME:
                    await response.write(b'data: {"type":6,"agent_message_chunk":{"role":"ass\n\n')
                if index == 0 and fault is AgentFault.QUOTA_ERROR:
                    error = {
                        "role": "assistant",
                        "msg_content": self.quota_text,
                        "thinking_content": "",
                        "finish_reason": "error",
                    }
                    await self._frame(response, {"type": 2, "agent_message": error})
                    return await self._end(response, received)
                if index == 0 and fault is AgentFault.CHUNK_ERROR:
                    await self._frame(response, _chunk("", finish=True, reason="error"))
                    return await self._end(response, received)
                if index == 0 and fault is AgentFault.SILENT_MID_STREAM:
                    await asyncio.sleep(3600)  # until the client leaves (or the stand-in stops)
                if index == 1 and fault is AgentFault.DISCONNECT_MID_STREAM:
                    return self._abort(request, received, response)
            if fault is AgentFault.DISCONNECT_MID_STREAM:  # an answer of a single chunk
                return self._abort(request, received, response)
            if fault is AgentFault.REPEAT_WHOLE_ANSWER:
                await self._frame(response, _chunk(text))  # not in `chunks`: not new text
            await self._frame(response, _chunk("", finish=True, reason="stop"))
            final = {
                "role": "assistant",
                "msg_content": text,
                "thinking_content": reasoning,
                "finish_reason": "stop",
                "usage": _usage(content, text + reasoning),
            }
            await self._frame(response, {"type": 2, "agent_message": final})
            if not session.title:
                session.title = self.title_for(session.turns[0])
            return await self._end(response, received)
        except (ConnectionResetError, asyncio.CancelledError):
            received.outcome = "disconnected"
            raise
        finally:
            self._busy.discard(session.session_id)

    @staticmethod
    async def _end(response: web.StreamResponse, received: AgentRequest) -> web.StreamResponse:
        await response.write_eof()
        received.outcome = "answered"
        return response

    @staticmethod
    def _abort(
        request: web.Request, received: AgentRequest, response: web.StreamResponse
    ) -> web.StreamResponse:
        if request.transport is not None:
            request.transport.abort()
        received.outcome = "disconnected"
        return response

    async def _frame(self, response: web.StreamResponse, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        prefix = "data:" if self.no_space_after_colon else "data: "
        await response.write(f"{prefix}{data}\n\n".encode())


def _chunk(
    delta: str, *, thinking: str = "", finish: bool = False, reason: str = ""
) -> dict[str, Any]:
    return {
        "type": 6,
        "agent_message_chunk": {
            "role": "assistant",
            "msg_content": delta,
            "thinking_content": thinking,
            "finish": finish,
            "finish_reason": reason,
        },
    }


def _usage(content: str, answer: str) -> dict[str, int]:
    input_tokens = max(1, len(content) // 4)
    output_tokens = max(1, len(answer) // 4)
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _js(value: str) -> str:
    """A JavaScript string literal that is safe inside <script>."""
    return json.dumps(value).replace("</", "<\\/")


@contextlib.asynccontextmanager
async def running_agent_standin(region: str = "intl") -> AsyncIterator[MiniMaxAgentStandIn]:
    standin = MiniMaxAgentStandIn(region)
    await standin.start()
    try:
        yield standin
    finally:
        await standin.stop()
