"""A Hailuo web-chat stand-in on loopback: checks what the real server checks, streams SSE.

It recomputes the `yy` signature on its own (no import from `bot`), keeps conversations per
token, and can be told to misbehave in each way the client must survive.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import itertools
import json
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

CHAT_PATH = "/v4/api/chat/msg"
REQUIRED_QUERY = (
    "device_platform",
    "biz_id",
    "app_id",
    "version_code",
    "uuid",
    "device_id",
    "unix",
)
REQUIRED_FIELDS = ("characterID", "msgContent", "chatID", "searchMode")


LOGIN_PAGE = """<!doctype html>
<html><head><title>Hailuo AI</title></head>
<body class="no-js">
<button id="login" onclick="logIn()">Log in</button>
<script>
  localStorage.setItem("UNIQUE_USER_ID", "3f1c2d4e-1111-4000-8000-123456789abc");
  localStorage.setItem("USER_HARD_WARE_INFO", "301234567890999999");
  document.cookie = "_ga=GA1.1.77; path=/";
  function logIn() { localStorage.setItem("_token", "__TOKEN__"); }
  const delay = __DELAY__;
  if (delay !== null) { setTimeout(logIn, delay); }
  document.body.classList.remove("no-js");
</script>
</body></html>
"""


class Fault(enum.Enum):
    UNAUTHORIZED = "401"
    EXPIRED_JSON = "statusInfo says the login expired, with HTTP 200"
    BAD_SIGNATURE = "400 code 2"
    RATE_LIMITED = "429"
    SERVER_ERROR = "503"
    SLOW_FIRST_BYTE = "headers only after a delay"
    DISCONNECT_MID_STREAM = "connection dropped after two chunks"
    SILENT_MID_STREAM = "one chunk, then nothing"
    MALFORMED_LINE = "a data: line that is not JSON"
    SPLIT_MULTIBYTE = "a chunk ends inside a character, and a write splits one"
    STREAM_STATUS_ERROR = "a message_result with a non-zero statusInfo"
    CHALLENGE_403 = "403 with a CDN's HTML challenge page"


@dataclass
class ReceivedRequest:
    query: dict[str, str]
    headers: dict[str, str]
    fields: dict[str, str]
    client_port: int
    outcome: str = "pending"  # answered | refused | disconnected | pending
    chunks: list[tuple[float, str]] = field(default_factory=list)  # when each content was sent


@dataclass
class ServerConversation:
    token: str
    messages: list[str] = field(default_factory=list)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def expected_signature(path_and_query: str, fields: dict[str, str], timestamp: str) -> str:
    """The server's own reading of the protocol reference, section 2."""
    message = "".join(ch for ch in fields["msgContent"] if ch not in "\r\n")
    digest = "".join(_md5(part) for part in (fields["characterID"], message, fields["chatID"], ""))
    encoded = urllib.parse.quote(path_and_query, safe="-_.!~*'()")
    return _md5(encoded + "_" + digest + _md5(timestamp) + "ooui")


class HailuoStandIn:
    def __init__(self) -> None:
        self.valid_tokens: set[str] = set()
        self.requests: list[ReceivedRequest] = []
        self.conversations: dict[str, ServerConversation] = {}
        self.faults: deque[Fault] = deque()
        self.answers: deque[str] = deque()
        self.chunk_count = 4
        self.chunk_delay = 0.0
        self.first_chunk_delay = 0.0
        self.chunk_chars: int | None = None  # fixed-size chunks instead of chunk_count of them
        self.answer_for: Callable[[str], str] | None = None  # the answer for a question
        self.chunks_for: Callable[[str], int] | None = None  # how many events an answer takes
        self.first_byte_delay = 5.0
        self.retry_after = 7
        self.error_message = "content moderation"  # what STREAM_STATUS_ERROR says
        self._chat_ids = itertools.count(380_000_000_000)
        # The imitation of hailuo.ai's page: the token it grants after a (simulated) login.
        self.login_token = "page-login-token-0123456789"
        self.login_after: float | None = 1.0  # seconds; None: nobody ever logs in
        self.page_visits = 0
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post(CHAT_PATH, self._chat)
        app.router.add_get("/", self._home)
        self._runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def fail_next(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def answer_next(self, *texts: str) -> None:
        self.answers.extend(texts)

    async def wait_outcome(self, index: int, timeout: float = 30.0) -> str:
        async with asyncio.timeout(timeout):
            while len(self.requests) <= index or self.requests[index].outcome == "pending":
                await asyncio.sleep(0.01)
        return self.requests[index].outcome

    async def _home(self, request: web.Request) -> web.Response:
        """Like hailuo.ai: device ids and cookies at once, `_token` only after logging in."""
        self.page_visits += 1
        self.valid_tokens.add(self.login_token)
        delay = "null" if self.login_after is None else str(int(self.login_after * 1000))
        page = LOGIN_PAGE.replace("__TOKEN__", self.login_token).replace("__DELAY__", delay)
        response = web.Response(text=page, content_type="text/html")
        response.set_cookie("sessionid", "page-session-cookie", path="/")
        return response

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        fields: dict[str, str] = {}
        if request.content_type == "multipart/form-data":
            form = await request.post()
            fields = {name: value for name, value in form.items() if isinstance(value, str)}
        peer = request.transport.get_extra_info("peername") if request.transport else None
        received = ReceivedRequest(
            query=dict(request.query),
            headers={name.lower(): value for name, value in request.headers.items()},
            fields=fields,
            client_port=peer[1] if peer else 0,
        )
        self.requests.append(received)
        fault = self.faults.popleft() if self.faults else None

        refusal = self._refusal(request, received, fault)
        if refusal is not None:
            received.outcome = "refused"
            return refusal
        return await self._stream(request, received, fault)

    def _refusal(
        self, request: web.Request, received: ReceivedRequest, fault: Fault | None
    ) -> web.Response | None:
        if request.content_type != "multipart/form-data" or any(
            name not in received.fields for name in REQUIRED_FIELDS
        ):
            return _status(400, 1, "invalid form, check request parameters")
        if any(name not in received.query for name in REQUIRED_QUERY):
            return _status(400, 2, "missing query parameter, check request parameters")
        signature = expected_signature(request.path_qs, received.fields, received.query["unix"])
        if fault is Fault.BAD_SIGNATURE or received.headers.get("yy") != signature:
            return _status(400, 2, "signature mismatch, check request parameters")
        token = received.headers.get("token", "")
        if fault is Fault.CHALLENGE_403:
            return web.Response(
                status=403,
                text="<html><title>Just a moment...</title></html>",
                content_type="text/html",
            )
        if fault is Fault.UNAUTHORIZED or token not in self.valid_tokens:
            return _status(401, 1004, "token invalid, please login again")
        if fault is Fault.EXPIRED_JSON:
            return _status(200, 1005, "login expired")
        if fault is Fault.RATE_LIMITED:
            response = _status(429, 1100, "too many requests")
            response.headers["Retry-After"] = str(self.retry_after)
            return response
        if fault is Fault.SERVER_ERROR:
            return _status(503, 1500, "service unavailable")
        chat_id = received.fields["chatID"]
        if chat_id != "0":
            known = self.conversations.get(chat_id)
            if known is None or known.token != token:
                return _status(200, 1200, "conversation not found")
        return None

    async def _stream(
        self, request: web.Request, received: ReceivedRequest, fault: Fault | None
    ) -> web.StreamResponse:
        token = received.headers["token"]
        chat_id = received.fields["chatID"]
        is_new = chat_id == "0"
        if is_new:
            chat_id = str(next(self._chat_ids))
            self.conversations[chat_id] = ServerConversation(token=token)
        conversation = self.conversations[chat_id]
        conversation.messages.append(received.fields["msgContent"])
        if self.answers:
            text = self.answers.popleft()
        elif self.answer_for is not None:
            text = self.answer_for(received.fields["msgContent"])
        else:
            text = _default_answer(conversation)
        if fault is Fault.SPLIT_MULTIBYTE:
            text = "Привет, мир 🙂 и ещё раз 🙂"

        if fault is Fault.SLOW_FIRST_BYTE:
            await asyncio.sleep(self.first_byte_delay)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        try:
            await response.prepare(request)
            title = f"Chat about {received.fields['msgContent'][:20]}" if is_new else ""
            await self._event(response, "send_result", _send_result(chat_id, title))
            if self.chunks_for is not None:
                count = self.chunks_for(text)
            elif self.chunk_chars:
                count = -(-len(text) // self.chunk_chars)
            else:
                count = self.chunk_count
            frames = _cumulative_frames(text, count, fault is Fault.SPLIT_MULTIBYTE)
            if self.first_chunk_delay:
                await asyncio.sleep(self.first_chunk_delay)
            for index, frame in enumerate(frames):
                if self.chunk_delay:
                    await asyncio.sleep(self.chunk_delay)
                if fault is Fault.MALFORMED_LINE and index == 1:
                    await response.write(b'event: message_result\ndata: {"data": {"messageRes\n\n')
                if fault is Fault.STREAM_STATUS_ERROR and index == 1:
                    error = _stream_error(chat_id, self.error_message)
                    await self._event(response, "message_result", error)
                    received.outcome = "answered"
                    return response
                if fault is Fault.DISCONNECT_MID_STREAM and index == 2:
                    assert request.transport is not None
                    request.transport.abort()
                    received.outcome = "disconnected"
                    return response
                if fault is Fault.SILENT_MID_STREAM and index == 1:
                    await asyncio.sleep(3600)
                final = index == len(frames) - 1
                payload = _message_result(chat_id, frame, final)
                await self._event(
                    response, "message_result", payload, split_bytes=fault is Fault.SPLIT_MULTIBYTE
                )
                received.chunks.append((time.monotonic(), frame))
            await response.write(b"event: close_chunk\ndata: {}\n\n")
            await response.write_eof()
            received.outcome = "answered"
        except (ConnectionResetError, asyncio.CancelledError):
            received.outcome = "disconnected"
            raise
        return response

    @staticmethod
    async def _event(
        response: web.StreamResponse,
        name: str,
        payload: dict[str, Any],
        *,
        split_bytes: bool = False,
    ) -> None:
        raw = f"event: {name}\ndata: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()
        cut = _inside_character(raw) if split_bytes else None
        if cut is None:
            await response.write(raw)
            return
        await response.write(raw[:cut])
        await asyncio.sleep(0.02)
        await response.write(raw[cut:])


def _status(http_status: int, code: int, message: str) -> web.Response:
    body = {"statusInfo": {"code": code, "message": message}, "data": {}}
    return web.json_response(body, status=http_status)


def _default_answer(conversation: ServerConversation) -> str:
    count = len(conversation.messages)
    return f"You said: {conversation.messages[-1]} (message {count} in this conversation)"


def _cumulative_frames(text: str, count: int, broken_tail: bool) -> list[str]:
    step = max(1, -(-len(text) // max(1, count)))
    frames = [text[:end] for end in range(step, len(text), step)] + [text]
    if broken_tail:
        # The upstream decoder cut a character in half: the frame ends in U+FFFD instead.
        emoji_at = text.index("🙂")
        frames.insert(1, text[:emoji_at] + "\ufffd")
    return frames


def _inside_character(raw: bytes) -> int | None:
    for index, byte in enumerate(raw):
        if byte >= 0xC0:
            return index + 1
    return None


def _send_result(chat_id: str, title: str) -> dict[str, Any]:
    return {
        "data": {"sendResult": {"chatID": chat_id, "chatTitle": title, "msgID": "1"}},
        "statusInfo": {"code": 0, "message": "success"},
    }


def _message_result(chat_id: str, content: str, final: bool) -> dict[str, Any]:
    return {
        "data": {
            "messageResult": {
                "content": content,
                "chatID": chat_id,
                "msgID": "2",
                "isEnd": 0 if final else 1,
                "extra": {},
            }
        },
        "type": 8 if final else 2,
        "statusInfo": {"code": 0, "message": "success"},
    }


def _stream_error(chat_id: str, message: str) -> dict[str, Any]:
    return {
        "data": {"messageResult": {"content": "", "chatID": chat_id, "isEnd": 1}},
        "type": 2,
        "statusInfo": {"code": 1300, "message": message},
    }


@contextlib.asynccontextmanager
async def running_standin() -> Any:
    standin = HailuoStandIn()
    await standin.start()
    try:
        yield standin
    finally:
        await standin.stop()
