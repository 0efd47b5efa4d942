"""Streams answers from the official MiniMax API, or any OpenAI-compatible server.

The API keeps no conversation: every question carries the history the bot stored. Reasoning is
asked for apart (`reasoning_split`); servers that inline it as `<think>…</think>` are split here.
This is the only module that imports `openai`: the rest of the bot sees the `Upstream` protocol.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Self

import openai
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam
from openai.types.chat.chat_completion_chunk import ChoiceDelta

from bot.minimax_api.credentials import ApiKey
from bot.minimax_api.thinking import ThinkSplitter
from bot.upstream import (
    AuthRejected,
    Conversation,
    Credentials,
    Finished,
    ProtocolChanged,
    RateLimited,
    ReasoningDelta,
    StreamInterrupted,
    TextDelta,
    Turn,
    UpstreamError,
    UpstreamEvent,
    UpstreamFailure,
    UpstreamTimeouts,
    UpstreamUnavailable,
)

log = logging.getLogger(__name__)

NAME = "MiniMax API"
# MiniMax's `base_resp.status_code`s that are not plain errors (0 is success).
AUTH_CODES = frozenset({1004, 2049})
RATE_LIMIT_CODE = 1002
BALANCE_CODE = 1008
# After `finish_reason`, how long trailing chunks (usage, [DONE]) may take before we stop waiting.
AFTER_FINISH = 2.0
MAX_DETAIL = 200
MAX_JSON_BODY = 256 * 1024


def api_key(credentials: Credentials) -> ApiKey:
    if not isinstance(credentials, ApiKey):
        raise AuthRejected(
            f"the stored login is for {credentials.UPSTREAM}, not {NAME}: set MINIMAX_API_KEY"
        )
    return credentials


class MiniMaxApiClient:
    """One HTTP connection pool for all keys, one `AsyncOpenAI` per key; `close()` at shutdown."""

    name = "minimax-api"
    probes_login = True
    keeps_history = False

    def __init__(
        self,
        *,
        base_url: str,
        model: str = "MiniMax-M3",
        system_prompt: str = "",
        proxy: str | None = None,
        timeouts: UpstreamTimeouts | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.system_prompt = system_prompt
        self._split_reasoning = True  # until the server refuses `reasoning_split`
        self._proxy = proxy
        self._timeouts = timeouts or UpstreamTimeouts()
        self._http: openai.DefaultAsyncHttpxClient | None = None  # made on first use
        self._clients: dict[str, openai.AsyncOpenAI] = {}  # key fingerprint → client

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()  # closes the shared pool too (idempotent)
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    # --- the interface -------------------------------------------------------------------------

    async def probe(self, credentials: Credentials) -> ApiKey:
        """`GET {base}/models`, the cheapest authenticated call; a server without it (404)
        cannot tell, so the key counts as fine until a question says otherwise."""
        key = api_key(credentials)
        await self._list_models(key)
        return key

    async def models(self, credentials: Credentials) -> list[str]:
        return await self._list_models(api_key(credentials))

    async def title(self, credentials: Credentials, conversation: Conversation) -> str:
        return ""  # the API keeps no conversations, so it names none

    async def stream(
        self,
        credentials: Credentials,
        text: str,
        conversation: Conversation | None = None,
        *,
        history: Sequence[Turn] = (),
        model: str | None = None,
    ) -> AsyncGenerator[UpstreamEvent, None]:
        """Ask `text` after `history` (oldest first). `conversation` is ignored: there is no
        server-side one, so no ConversationStarted either. Yields ReasoningDelta and TextDelta,
        then Finished; closing the generator closes the HTTP response."""
        key = api_key(credentials)
        client = self._client(key)
        loop = asyncio.get_running_loop()
        started = loop.time()
        total_deadline = started + self._timeouts.total
        first_limit = min(self._timeouts.first_event, self._timeouts.total)
        try:
            async with asyncio.timeout_at(started + first_limit):
                chunks = await self._open(client, model or self.model, text, history)
        except TimeoutError:
            raise UpstreamUnavailable(f"{NAME} did not answer within {first_limit:g} s") from None
        except openai.OpenAIError as exc:
            raise _failure(exc, key.key) from None

        answer = _Answer(key.key)
        try:
            content_type = chunks.response.headers.get("content-type", "").lower()
            if content_type.startswith("text/html"):
                raise ProtocolChanged(
                    f"{NAME} answered with an HTML page instead of a stream: check the base URL"
                )
            if "json" in content_type:
                # Errors in a 200 body (`base_resp`), or a server that ignored `stream`.
                log.debug("%s answered JSON where a stream was asked for", NAME)
                payload = await self._json_body(chunks.response, total_deadline)
                for event in answer.whole(payload):
                    yield event
                return
            phase = self._timeouts.first_event
            deadline = min(started + phase, total_deadline)
            iterator = aiter(chunks)
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        chunk = await anext(iterator)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    if answer.finished:
                        break  # the answer is complete; only the trailing chunks are late
                    if loop.time() >= total_deadline:
                        reason = f"the answer took longer than {self._timeouts.total:g} s"
                    else:
                        reason = f"{NAME} went silent for {phase:g} s"
                    raise answer.broken(reason) from None
                except openai.APIError as exc:
                    if answer.finished:
                        break
                    raise _failure(exc, key.key, partial_text=answer.text) from None
                except ValueError:  # a `data:` line that is not JSON
                    raise ProtocolChanged(
                        f"{NAME} sent a stream chunk that is not JSON", partial_text=answer.text
                    ) from None
                for event in answer.handle(chunk):
                    yield event
                phase = self._timeouts.idle
                now = loop.time()
                deadline = min(now + (AFTER_FINISH if answer.finished else phase), total_deadline)
            for event in answer.end():
                yield event
        finally:
            await chunks.close()

    # --- requests --------------------------------------------------------------------------------

    async def _open(
        self, client: openai.AsyncOpenAI, model: str, text: str, history: Sequence[Turn]
    ) -> openai.AsyncStream[ChatCompletionChunk]:
        """The streamed request; reasoning asked for apart (`reasoning_split`, MiniMax's). A
        strict OpenAI-compatible server refuses the unknown field with a 400 naming it: then
        it is asked without, once and from then on (its inline <think> is split out anyway)."""
        messages = self._messages(text, history)
        if self._split_reasoning:
            try:
                return await client.chat.completions.create(
                    model=model,
                    messages=messages,
                    stream=True,
                    extra_body={"reasoning_split": True},
                )
            except openai.BadRequestError as exc:
                if "reasoning_split" not in str(exc.message):
                    raise
                log.info("%s does not take reasoning_split; asking without it", NAME)
                self._split_reasoning = False
        return await client.chat.completions.create(model=model, messages=messages, stream=True)

    async def _json_body(self, response: Any, total_deadline: float) -> object:
        """The JSON body of a 200 that is not a stream; openai wraps the HTTP library's errors
        only while it iterates a stream, so they are mapped here."""
        deadline = min(asyncio.get_running_loop().time() + self._timeouts.idle, total_deadline)
        raw = b""
        try:
            async with asyncio.timeout_at(deadline):
                async for piece in response.aiter_bytes():
                    raw += piece
                    if len(raw) > MAX_JSON_BODY:
                        raise ProtocolChanged(f"{NAME} answered a JSON body too large to read")
        except UpstreamFailure:
            raise
        except TimeoutError:
            raise UpstreamUnavailable(f"{NAME} went silent while sending its answer") from None
        except Exception as exc:  # httpx's errors (a broken connection, a bad encoding)
            raise UpstreamUnavailable(
                f"the connection to {NAME} broke ({type(exc).__name__})"
            ) from None
        try:
            return json.loads(raw)
        except ValueError:
            raise ProtocolChanged(f"{NAME} answered malformed JSON instead of a stream") from None

    def _messages(self, text: str, history: Sequence[Turn]) -> list[ChatCompletionMessageParam]:
        messages: list[ChatCompletionMessageParam] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        for turn in history:
            messages.append({"role": "user", "content": turn.question})
            messages.append({"role": "assistant", "content": turn.answer})
        messages.append({"role": "user", "content": text})
        return messages

    async def _list_models(self, key: ApiKey) -> list[str]:
        client = self._client(key)
        try:
            async with asyncio.timeout(self._timeouts.first_event):
                page = await client.models.list()
        except TimeoutError:
            raise UpstreamUnavailable(
                f"{NAME} did not answer within {self._timeouts.first_event:g} s"
            ) from None
        except openai.NotFoundError:
            return []  # a server without /models: nothing to choose from, nothing refused
        except openai.OpenAIError as exc:
            raise _failure(exc, key.key) from None
        _check_extra(page, key.key)
        return [item.id for item in page.data or [] if isinstance(getattr(item, "id", None), str)]

    def _client(self, key: ApiKey) -> openai.AsyncOpenAI:
        if self._http is None or self._http.is_closed:
            self._http = openai.DefaultAsyncHttpxClient(
                proxy=self._proxy,
                # The PROXY setting is the one source of truth, as for the other upstreams.
                trust_env=False,
                timeout=self._http_timeout(),
            )
            self._clients = {}
        client = self._clients.get(key.fingerprint)
        if client is None:
            client = openai.AsyncOpenAI(
                api_key=key.key,
                base_url=self.base_url,
                # No retries in the library: a 429's Retry-After and the failover to another
                # key are the caller's decisions, not seconds slept through silently here.
                max_retries=0,
                timeout=self._http_timeout(),
                http_client=self._http,
                # Nothing of an OpenAI environment (OPENAI_ORG_ID, …) goes to another server.
                organization="",
                project="",
            )
            self._clients[key.fingerprint] = client
        return client

    def _http_timeout(self) -> openai.Timeout:
        """Per socket operation; `read` bounds the wait for each chunk. The first-event, idle
        and total limits proper are kept around each step with asyncio."""
        timeouts = self._timeouts
        read = max(timeouts.first_event, timeouts.idle)
        return openai.Timeout(read, connect=timeouts.connect, read=read)


class _Answer:
    """What one stream has brought so far, and the events each chunk adds."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._inline = ThinkSplitter()
        self._apart = False  # reasoning came in its own field: `content` is answer only
        self._details_text = ""  # all `reasoning_details` text, as the server counts it
        self._details_mode: Literal["unknown", "incremental", "cumulative"] = "unknown"
        self.text = ""
        self.reasoning = ""
        self.finished = False

    def handle(self, chunk: ChatCompletionChunk) -> list[UpstreamEvent]:
        _check_extra(chunk, self._secret, partial_text=self.text)
        events: list[UpstreamEvent] = []
        for choice in chunk.choices or []:
            if choice.index:
                continue  # we ask for one choice; a server that sends more is not shown them
            delta = choice.delta
            if delta is not None:
                seen, reasoning = self._apart_reasoning(delta)
                if seen:
                    events += self._mark_apart()
                events += self._reason(reasoning)
                if isinstance(delta.content, str) and delta.content:
                    events += self._content(delta.content)
            if choice.finish_reason:
                self.finished = True
        return events

    def whole(self, payload: object) -> list[UpstreamEvent]:
        """A JSON body instead of a stream: a `base_resp` or `error`, or a whole completion."""
        if not isinstance(payload, dict):
            raise ProtocolChanged(f"{NAME} answered JSON that is not an object")
        failure = _base_resp_failure(payload.get("base_resp"), self._secret)
        if failure is not None:
            raise failure
        error = payload.get("error")
        if error:
            raise UpstreamError(f"{NAME}: {_detail(error, self._secret) or 'error'}")
        choices = payload.get("choices")
        first = choices[0] if isinstance(choices, list) and choices else None
        message = first.get("message") if isinstance(first, dict) else None
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise ProtocolChanged(f"{NAME} answered JSON without a message")
        reasoning = message.get("reasoning_content")
        events: list[UpstreamEvent] = []
        if isinstance(reasoning, str) and reasoning:
            events += self._mark_apart() + self._reason(reasoning)
        events += self._content(message["content"])
        self.finished = True
        return events + self.end()

    def end(self) -> list[UpstreamEvent]:
        """The stream is over: Finished if the server said the answer was complete."""
        answer, reasoning = self._inline.flush()
        events = self._reason(reasoning) + self._text(answer)
        if self.finished:
            return [*events, Finished(self.text, conversation=None)]
        # openai's stream stops quietly at a clean end of the body, [DONE] or not: a missing
        # finish_reason is the only sign that the answer was cut short.
        raise self.broken(f"{NAME} closed the stream before the answer was complete")

    def broken(self, reason: str) -> UpstreamFailure:
        if self.text:
            return StreamInterrupted(reason, partial_text=self.text)
        return UpstreamUnavailable(reason)

    def _apart_reasoning(self, delta: ChoiceDelta) -> tuple[bool, str]:
        """Whether the chunk carries reasoning outside `content`, and its new text:
        `reasoning_details` (MiniMax) or `reasoning_content` (vLLM, DeepSeek and many others;
        increments). Fields outside OpenAI's schema live in pydantic's `model_extra`."""
        extra: Mapping[str, Any] = delta.model_extra or {}
        seen = False
        found = ""
        details = extra.get("reasoning_details")
        if isinstance(details, list) and details:
            seen = True
            found += self._reasoning_details(details)
        for name in ("reasoning_content", "reasoning"):
            value = extra.get(name)
            if isinstance(value, str) and value:
                seen = True
                found += value
                break
        return seen, found

    def _reasoning_details(self, details: list[Any]) -> str:
        """New text of `delta.reasoning_details` (MiniMax's documented shape: a list of
        {"type": "reasoning.text", "text": …}). MiniMax's examples treat the text as the whole
        reasoning so far, other servers send increments: accept both. A chunk that does not
        extend what came before proves increments; one that does is read as cumulative."""
        text = "".join(
            item_text
            for item in details
            if isinstance(item_text := _field(item, "text"), str) and item_text
        )
        if not text:
            return ""
        so_far = self._details_text
        if self._details_mode != "incremental" and so_far and text.startswith(so_far):
            if self._details_mode == "unknown":
                log.debug("%s sends reasoning_details as the whole text so far", NAME)
            self._details_mode = "cumulative"
            self._details_text = text
            return text[len(so_far) :]
        if so_far:
            self._details_mode = "incremental"
        self._details_text += text
        return text

    def _reason(self, delta: str) -> list[UpstreamEvent]:
        if not delta:
            return []
        self.reasoning += delta
        return [ReasoningDelta(delta, self.reasoning)]

    def _text(self, delta: str) -> list[UpstreamEvent]:
        if not delta:
            return []
        self.text += delta
        return [TextDelta(delta, self.text)]

    def _content(self, content: str) -> list[UpstreamEvent]:
        if self._apart:
            return self._text(content)
        answer, reasoning = self._inline.feed(content)
        return self._reason(reasoning) + self._text(answer)

    def _mark_apart(self) -> list[UpstreamEvent]:
        """Reasoning arrived in its own field: this server splits, so a `<think>` in its
        `content` is answer text (a question about the tag), not a block to hide."""
        if self._apart:
            return []
        self._apart = True
        answer, reasoning = self._inline.flush()
        return self._reason(reasoning) + self._text(answer)


def _field(item: object, name: str) -> object:
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)


def _check_extra(model: Any, secret: str, *, partial_text: str = "") -> None:
    """MiniMax reports some errors in a 200 body or chunk as `base_resp`."""
    extra: Mapping[str, Any] = getattr(model, "model_extra", None) or {}
    failure = _base_resp_failure(extra.get("base_resp"), secret, partial_text=partial_text)
    if failure is not None:
        raise failure


def _base_resp_failure(
    base_resp: object, secret: str, *, partial_text: str = ""
) -> UpstreamFailure | None:
    if not isinstance(base_resp, Mapping):
        return None
    raw_code = base_resp.get("status_code")
    try:
        code = int(raw_code) if raw_code is not None else 0
    except (TypeError, ValueError):
        return ProtocolChanged(f"{NAME} sent a base_resp without a numeric status_code")
    if code == 0:
        return None
    words = _clean(str(base_resp.get("status_msg") or ""), secret)
    if code in AUTH_CODES:
        return AuthRejected(
            f"{NAME}: invalid api key ({code}{': ' + words if words else ''})",
            partial_text=partial_text,
        )
    if code == BALANCE_CODE:
        return RateLimited(f"{NAME}: insufficient balance ({code})", partial_text=partial_text)
    if code == RATE_LIMIT_CODE:
        return RateLimited(f"{NAME}: rate limit reached ({code})", partial_text=partial_text)
    return UpstreamError(
        f"{NAME}: {words or 'error'} ({code})", code=code, partial_text=partial_text
    )


def _failure(exc: openai.OpenAIError, secret: str, *, partial_text: str = "") -> UpstreamFailure:
    """openai's typed exceptions as the bot's; the messages never hold the key."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        body = exc.body
        base = body.get("base_resp") if isinstance(body, Mapping) else None
        mapped = _base_resp_failure(base, secret, partial_text=partial_text)
        if mapped is not None and not isinstance(mapped, UpstreamError | ProtocolChanged):
            return mapped
        detail = _detail(body, secret)
        if status == 401:
            return AuthRejected(f"{NAME}: invalid api key (401)", status=401)
        if status == 403:
            return AuthRejected(
                f"{NAME}: the api key is not allowed here (403{': ' + detail if detail else ''})",
                status=403,
            )
        if status == 429:
            return RateLimited(
                f"{NAME}: rate limited (429{': ' + detail if detail else ''})",
                retry_after=_retry_after(exc.response.headers),
                partial_text=partial_text,
            )
        if status >= 500 or status == 408:
            reason = f"{NAME} is unavailable ({status})"
            if partial_text:
                return StreamInterrupted(reason, partial_text=partial_text)
            return UpstreamUnavailable(reason)
        if mapped is not None:
            return mapped
        return UpstreamError(f"{NAME}: {detail or 'request refused'} ({status})", code=status)
    if isinstance(exc, openai.APITimeoutError):
        reason = f"{NAME} did not answer in time"
    elif isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        reason = (
            f"the connection to {NAME} broke"
            if partial_text
            else f"cannot reach {NAME}" + (f" ({type(cause).__name__})" if cause else "")
        )
    else:
        detail = _detail(getattr(exc, "body", None), secret) or _clean(str(exc), secret)
        return UpstreamError(f"{NAME}: {detail or 'error'}", partial_text=partial_text)
    if partial_text:
        return StreamInterrupted(reason, partial_text=partial_text)
    return UpstreamUnavailable(reason)


def _detail(body: object, secret: str) -> str:
    """The server's own words from an error body: OpenAI's `error.message`, MiniMax's
    `base_resp.status_msg`, or the text itself."""
    if isinstance(body, Mapping):
        for holder in (body, body.get("error"), body.get("base_resp")):
            if not isinstance(holder, Mapping):
                continue
            for name in ("message", "status_msg", "msg"):
                value = holder.get(name)
                if isinstance(value, str) and value.strip():
                    return _clean(value, secret)
        return ""
    if isinstance(body, str):
        return _clean(body, secret)
    return ""


def _clean(text: str, secret: str) -> str:
    """Short, one line, and without the key (some servers echo it in their refusals)."""
    if secret:
        text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """`Retry-After` in seconds or as an HTTP date; None when absent or unreadable."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
