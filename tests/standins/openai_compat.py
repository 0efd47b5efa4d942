"""An OpenAI-compatible chat server on loopback that behaves as the MiniMax API would.

An independent reading of shared/reference/minimax-api.md and of OpenAI's chat-completions
streaming shape: nothing comes from `bot`, so a misreading in the adapter shows up here.

- `POST /v1/chat/completions`: `Authorization: Bearer <key>` must name a key in `api_keys`
  (else 401 with an OpenAI error body that never echoes the key); `model` must be one of
  `models` (else 400); `messages` must be role/content objects (else 400). Every chat POST is
  recorded in `chat_requests` (model, messages, the whole JSON body), refused ones too.
  The answer streams as `data: {chat.completion.chunk}` events ended by `data: [DONE]`; the last
  chunk has `finish_reason: "stop"`, usage and MiniMax's `base_resp` with status_code 0.
- Reasoning: with `reasoning_split: true` in the request (and `ignore_reasoning_split` False)
  it streams apart, as `reasoning_style` says (`reasoning_details` increments, the same but
  cumulative, or `reasoning_content`); otherwise inline in `content` as `<think>…</think>`, cut
  in the middle of both tags ("<th" | "ink>", "</thi" | "nk>").
- `GET /v1/models`: the OpenAI list shape (404 when `models_endpoint` is False).
- Faults (`Fault`): one-shot ones queued with `fail_next` are used by the next chat POST that
  passes the key check; `sticky_fault` applies to every chat POST until cleared.
- `gate`: when set to an unset asyncio.Event, each stream waits after its first chunk until the
  event is set (or the client leaves). `streams_open` counts streams being written.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import json
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from aiohttp import web

DEFAULT_KEY = "sk-standin-0123456789abcdef"
DEFAULT_MODELS = ("MiniMax-M3", "MiniMax-M2.7", "MiniMax-M2.7-highspeed")
CREATED = 1_790_000_000
ROLES = frozenset({"system", "user", "assistant", "developer", "tool"})
ReasoningStyle = Literal["reasoning_details", "reasoning_details_cumulative", "reasoning_content"]


class Fault(enum.Enum):
    UNAUTHORIZED = "401 with an OpenAI error body, as for a wrong key"
    RATE_LIMITED = "429 with Retry-After: <retry_after> (no header when retry_after is None)"
    SERVER_ERROR = "500 with an OpenAI error body"
    UNAVAILABLE = "503 with an OpenAI error body"
    BASE_RESP = "200 application/json: no choices, base_resp <base_resp_code>/<base_resp_msg>"
    HTML_PAGE = "200 text/html: a captive portal or a wrong base URL's web page"
    BASE_RESP_IN_STREAM = (
        "stream: after the first answer chunk, a chunk with base_resp <base_resp_code>, then [DONE]"
    )
    BREAK_MID_STREAM = "stream: connection aborted after <break_after> answer chunks, no [DONE]"
    END_WITHOUT_DONE = (
        "stream: the body ends cleanly after <break_after> answer chunks:"
        " no finish_reason, no [DONE]"
    )


STATUS_FAULTS = frozenset(
    {
        Fault.UNAUTHORIZED,
        Fault.RATE_LIMITED,
        Fault.SERVER_ERROR,
        Fault.UNAVAILABLE,
        Fault.BASE_RESP,
        Fault.HTML_PAGE,
    }
)


@dataclass
class Reply:
    """A scripted answer; `reasoning` None takes the stand-in's default reasoning."""

    text: str
    reasoning: str | None = None


@dataclass
class ChatRequest:
    key: str  # the bearer value sent ("" when none)
    body: dict[str, Any]  # the whole JSON body ({} when it was not a JSON object)
    status: int = 0
    outcome: str = "pending"  # answered | refused | broken | disconnected
    chunks_sent: int = 0
    completion_id: str = ""
    # (time, the answer text sent so far) at each chunk that carried answer text (the benchmark
    # measures how far behind the chat is).
    chunks: list[tuple[float, str]] = field(default_factory=list)

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = self.body.get("messages")
        return messages if isinstance(messages, list) else []

    @property
    def reasoning_split(self) -> bool:
        return self.body.get("reasoning_split") is True


@dataclass
class _Piece:
    delta: dict[str, Any]
    is_answer: bool  # carries answer text (counts for `break_after`)


def _error(status: int, message: str, kind: str, code: str | None = None) -> web.Response:
    error: dict[str, Any] = {"message": message, "type": kind, "param": None, "code": code}
    return web.json_response({"error": error}, status=status)


def split_text(text: str, count: int) -> list[str]:
    """`text` as at most `count` consecutive non-empty pieces ([] for "")."""
    if not text:
        return []
    step = max(1, -(-len(text) // max(1, count)))
    return [text[start : start + step] for start in range(0, len(text), step)]


class OpenAICompatStandIn:
    def __init__(
        self, *, api_key: str = DEFAULT_KEY, models: Sequence[str] = DEFAULT_MODELS
    ) -> None:
        self.api_keys: set[str] = {api_key}
        self.models: list[str] = list(models)
        self.models_endpoint = True
        self.base_url = ""  # http://127.0.0.1:<port>/v1 once started
        # What was asked.
        self.chat_requests: list[ChatRequest] = []
        self.requests_seen = 0  # every HTTP request, any path
        self.streams_open = 0
        self.streams_started = 0
        # What is answered.
        self.replies: deque[Reply] = deque()
        self.answer_for: Callable[[str], str] | None = None  # last user text -> answer
        self.default_reasoning: Callable[[str], str] = _default_reasoning
        self.reasoning_style: ReasoningStyle = "reasoning_details"
        self.ignore_reasoning_split = False
        self.ignore_stream = False  # answer one JSON completion even when asked to stream
        self.refused_fields: set[str] = set()  # body fields answered with 400 (strict servers)
        self.chunk_count = 4  # answer chunks
        self.chunks_for: Callable[[str], int] | None = None  # answer text -> its chunk count
        self.reasoning_chunk_count = 3
        self.chunk_delay = 0.0  # between chunks
        self.first_chunk_delay = 0.0  # before the first chunk
        self.gate: asyncio.Event | None = None
        # Faults.
        self.faults: deque[Fault] = deque()
        self.sticky_fault: Fault | None = None
        self.retry_after: str | None = "7"
        self.base_resp_code = 1008
        self.base_resp_msg = "insufficient balance"
        self.break_after = 2
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        app.middlewares.append(self._count)
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        port = runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # ---- test controls ---------------------------------------------------------------------

    def reply_next(self, text: str, reasoning: str | None = None) -> None:
        self.replies.append(Reply(text, reasoning))

    def fail_next(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait for `condition` (polled); TimeoutError after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.01)

    async def wait_streams_closed(self, timeout: float = 30.0) -> None:
        await self.wait_until(lambda: self.streams_open == 0, timeout)

    # ---- handlers --------------------------------------------------------------------------

    @web.middleware
    async def _count(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        self.requests_seen += 1
        response: web.StreamResponse = await handler(request)
        return response

    async def _not_found(self, request: web.Request) -> web.Response:
        return _error(404, f"no route {request.method} {request.path}", "invalid_request_error")

    def _bearer(self, request: web.Request) -> str:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""

    def _unauthorized(self) -> web.Response:
        return _error(
            401,
            "Incorrect API key provided. You can find your API key in the account settings.",
            "authentication_error",
            "invalid_api_key",
        )

    async def _models(self, request: web.Request) -> web.Response:
        if self._bearer(request) not in self.api_keys:
            return self._unauthorized()
        if not self.models_endpoint:
            return _error(404, "not found", "invalid_request_error")
        data = [
            {"id": model, "object": "model", "created": CREATED, "owned_by": "minimax"}
            for model in self.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        key = self._bearer(request)
        received = ChatRequest(key=key, body=body if isinstance(body, dict) else {})
        self.chat_requests.append(received)
        if key not in self.api_keys:
            return self._refuse(received, self._unauthorized())
        fault = self.faults.popleft() if self.faults else self.sticky_fault
        if fault in STATUS_FAULTS and fault is not Fault.BASE_RESP:
            assert fault is not None
            return self._refuse(received, self._fault_response(fault))
        problem = self._problem(body)
        if problem is not None:
            return self._refuse(received, problem)
        unknown = sorted(set(received.body) & self.refused_fields)
        if unknown:  # a strict OpenAI server: fields it does not know are an error
            message = f"Unrecognized request argument supplied: {unknown[0]}"
            return self._refuse(received, _error(400, message, "invalid_request_error"))
        last_user = next(
            (
                str(message.get("content", ""))
                for message in reversed(received.messages)
                if message.get("role") == "user"
            ),
            "",
        )
        reply = self._reply(last_user)
        if fault is Fault.BASE_RESP:
            payload = self._completion(received, "", "")
            payload["choices"] = None
            payload["base_resp"] = {
                "status_code": self.base_resp_code,
                "status_msg": self.base_resp_msg,
            }
            received.status, received.outcome = 200, "answered"
            return web.json_response(payload)
        if self.ignore_stream or received.body.get("stream") is not True:
            received.status, received.outcome = 200, "answered"
            return web.json_response(self._completion(received, reply.text, reply.reasoning or ""))
        return await self._stream(request, received, reply, fault)

    def _refuse(self, received: ChatRequest, response: web.Response) -> web.Response:
        received.status, received.outcome = response.status, "refused"
        return response

    def _fault_response(self, fault: Fault) -> web.Response:
        if fault is Fault.UNAUTHORIZED:
            return self._unauthorized()
        if fault is Fault.RATE_LIMITED:
            response = _error(
                429, "Rate limit reached for requests", "rate_limit_error", "rate_limit_exceeded"
            )
            if self.retry_after is not None:
                response.headers["Retry-After"] = self.retry_after
            return response
        if fault is Fault.HTML_PAGE:
            page = "<!doctype html><html><head><title>MiniMax</title></head><body></body></html>"
            return web.Response(status=200, text=page, content_type="text/html")
        if fault is Fault.SERVER_ERROR:
            return _error(500, "The server had an error processing your request.", "server_error")
        return _error(503, "The service is temporarily unavailable.", "server_error")

    def _problem(self, body: object) -> web.Response | None:
        if not isinstance(body, dict):
            return _error(400, "the request body is not a JSON object", "invalid_request_error")
        model = body.get("model")
        if model not in self.models:
            return _error(
                400, f"unknown model '{model}'", "invalid_request_error", "model_not_found"
            )
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "messages must be a non-empty list", "invalid_request_error")
        for message in messages:
            if (
                not isinstance(message, dict)
                or message.get("role") not in ROLES
                or not isinstance(message.get("content"), str)
            ):
                return _error(
                    400, "each message needs a role and a string content", "invalid_request_error"
                )
        return None

    def _reply(self, last_user: str) -> Reply:
        if self.replies:
            reply = self.replies.popleft()
        elif self.answer_for is not None:
            reply = Reply(self.answer_for(last_user))
        else:
            reply = Reply(f"Echo: {last_user}")
        if reply.reasoning is None:
            reply = Reply(reply.text, self.default_reasoning(last_user))
        return reply

    # ---- answers ---------------------------------------------------------------------------

    def _completion(self, received: ChatRequest, text: str, reasoning: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if reasoning:
            message["reasoning_content"] = reasoning
        return {
            "id": f"chatcmpl-standin-{next(self._ids)}",
            "object": "chat.completion",
            "created": CREATED,
            "model": received.model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": _usage(received, text + reasoning),
            "base_resp": {"status_code": 0, "status_msg": ""},
        }

    def _plan(self, received: ChatRequest, reply: Reply) -> list[_Piece]:
        pieces: list[_Piece] = []
        reasoning = reply.reasoning or ""
        if received.reasoning_split and not self.ignore_reasoning_split:
            sent = ""
            for piece in split_text(reasoning, self.reasoning_chunk_count):
                sent += piece
                if self.reasoning_style == "reasoning_content":
                    delta: dict[str, Any] = {"content": "", "reasoning_content": piece}
                else:
                    text = sent if self.reasoning_style == "reasoning_details_cumulative" else piece
                    detail = {
                        "type": "reasoning.text",
                        "id": "reasoning-text-1",
                        "format": "MiniMax-response-v1",
                        "index": 0,
                        "text": text,
                    }
                    delta = {"content": "", "reasoning_details": [detail]}
                pieces.append(_Piece(delta, is_answer=False))
            for piece in split_text(reply.text, self._chunks_of(reply.text)):
                pieces.append(_Piece({"content": piece}, is_answer=True))
            return pieces
        return [
            _Piece({"content": content}, is_answer)
            for content, is_answer in self._inline(reasoning, reply.text)
        ]

    def _inline(self, reasoning: str, text: str) -> list[tuple[str, bool]]:
        """`<think>reasoning</think>\\n\\ntext` cut inside both tags, in the reasoning and
        through the answer; (content, carries answer text) pairs."""
        if not reasoning:
            return [(piece, True) for piece in split_text(text, self._chunks_of(text))]
        head = f"<think>{reasoning}</think>\n\n"
        close_at = len("<think>") + len(reasoning)
        cuts = {3, len("<think>") + len(reasoning) // 2, close_at + 5, len(head)}
        answer_pieces = split_text(text, self._chunks_of(text))
        position = len(head)
        for piece in answer_pieces[:-1]:
            position += len(piece)
            cuts.add(position)
        full = head + text
        bounds = sorted(cut for cut in cuts if 0 < cut < len(full))
        pieces = []
        start = 0
        for end in [*bounds, len(full)]:
            if end > start:
                pieces.append((full[start:end], end > len(head)))
            start = end
        return pieces

    def _chunks_of(self, text: str) -> int:
        return self.chunks_for(text) if self.chunks_for is not None else self.chunk_count

    def _chunk(
        self,
        received: ChatRequest,
        delta: dict[str, Any],
        finish_reason: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        return {
            "id": received.completion_id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": received.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            **extra,
        }

    async def _stream(
        self, request: web.Request, received: ChatRequest, reply: Reply, fault: Fault | None
    ) -> web.StreamResponse:
        pieces = self._plan(received, reply)
        received.completion_id = f"chatcmpl-standin-{next(self._ids)}"
        response = web.StreamResponse(
            status=200,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
        )
        self.streams_open += 1
        self.streams_started += 1
        try:
            await response.prepare(request)
            received.status = 200
            if self.first_chunk_delay:
                await asyncio.sleep(self.first_chunk_delay)
            answer_chunks = 0
            content = ""
            for index, piece in enumerate(pieces):
                if index and self.chunk_delay:
                    await asyncio.sleep(self.chunk_delay)
                delta = {"role": "assistant", **piece.delta} if index == 0 else piece.delta
                await self._send(response, self._chunk(received, delta))
                received.chunks_sent += 1
                if index == 0 and self.gate is not None:
                    await self.gate.wait()
                content += str(piece.delta.get("content") or "")
                if not piece.is_answer:
                    continue
                answer = content.rpartition("</think>")[2].lstrip()
                received.chunks.append((time.monotonic(), answer))
                answer_chunks += 1
                if fault is Fault.BASE_RESP_IN_STREAM:
                    base_resp = {
                        "status_code": self.base_resp_code,
                        "status_msg": self.base_resp_msg,
                    }
                    error_chunk = self._chunk(received, {}, base_resp=base_resp)
                    error_chunk["choices"] = []
                    await self._send(response, error_chunk)
                    await response.write(b"data: [DONE]\n\n")
                    await response.write_eof()
                    received.outcome = "answered"
                    return response
                if answer_chunks >= self.break_after and fault is Fault.BREAK_MID_STREAM:
                    if request.transport is not None:
                        request.transport.abort()
                    received.outcome = "broken"
                    return response
                if answer_chunks >= self.break_after and fault is Fault.END_WITHOUT_DONE:
                    await response.write_eof()
                    received.outcome = "broken"
                    return response
            final = self._chunk(
                received,
                {},
                "stop",
                usage=_usage(received, reply.text + (reply.reasoning or "")),
                base_resp={"status_code": 0, "status_msg": ""},
            )
            await self._send(response, final)
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            received.outcome = "answered"
            return response
        except (ConnectionResetError, asyncio.CancelledError):
            received.outcome = "disconnected"
            raise
        finally:
            self.streams_open -= 1

    @staticmethod
    async def _send(response: web.StreamResponse, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        await response.write(f"data: {data}\n\n".encode())


def _default_reasoning(last_user: str) -> str:
    return f"The user wrote {len(last_user)} characters. I should echo them back politely."


def _usage(received: ChatRequest, output: str) -> dict[str, int]:
    prompt = sum(len(str(message.get("content", ""))) for message in received.messages) // 4
    completion = len(output) // 4
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
