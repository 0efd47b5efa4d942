"""Streams answers from the Hailuo web chat over one pooled aiohttp session."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import aiohttp

from bot.hailuo.answer import AnswerAssembler
from bot.hailuo.auth import AuthState
from bot.hailuo.signing import body_to_yy, yy
from bot.upstream import (
    DEFAULT_CHARACTER_ID,
    AuthRejected,
    Conversation,
    Credentials,
    Finished,
    RateLimited,
    SignatureRejected,
    StreamInterrupted,
    Turn,
    UpstreamError,
    UpstreamEvent,
    UpstreamFailure,
    UpstreamUnavailable,
)
from bot.upstream.http import PooledClient, describe_error, drain
from bot.upstream.sse import SseDecoder, SseTooLarge
from bot.upstream.timeouts import UpstreamTimeouts

log = logging.getLogger(__name__)

SIGNATURE_ERROR_CODE = 2
# Upstream says "login"/"token" in the statusInfo of a refused session; nothing else is documented.
_AUTH_MESSAGE = re.compile(r"token|login|log in|auth|expired|unauthori[sz]ed|sign in", re.I)
# Headers that belong to this request, never to the stored login.
_REQUEST_OWNED_HEADERS = frozenset(
    {"token", "yy", "cookie", "content-type", "content-length", "host", "accept-encoding"}
)


HailuoTimeouts = UpstreamTimeouts


class HailuoClient(PooledClient):
    """One long-lived HTTP session for all answers; create once, `close()` at shutdown."""

    def __init__(
        self,
        base_url: str,
        *,
        proxy: str | None = None,
        timeouts: HailuoTimeouts | None = None,
        connection_limit: int = 100,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._proxy = proxy
        super().__init__(timeouts, connection_limit)

    name = "hailuo"
    probes_login = False
    keeps_history = True

    async def probe(self, credentials: Credentials) -> Credentials:
        """The Hailuo web protocol has no cheap authenticated call: a login is only proven by
        an answer (which marks it working). Checks that the login is a Hailuo one."""
        return hailuo_auth(credentials)

    async def title(self, credentials: Credentials, conversation: Conversation) -> str:
        return ""  # Hailuo sends the title in the stream (TitleGenerated)

    async def models(self, credentials: Credentials) -> list[str]:
        """Hailuo's web chat offers no model choice."""
        return []

    async def stream(
        self,
        credentials: Credentials,
        text: str,
        conversation: Conversation | None = None,
        *,
        history: Sequence[Turn] = (),
        model: str | None = None,
    ) -> AsyncGenerator[UpstreamEvent, None]:
        """Ask `text`, continuing `conversation` when it was made with this login (Hailuo keeps
        the conversation: `history` and `model` are not used).

        Yields ConversationStarted, TitleGenerated, TextDelta and finally Finished; raises a
        UpstreamFailure subclass otherwise. Closing or cancelling the iterator closes the request.
        """
        auth = hailuo_auth(credentials)
        reuse = conversation is not None and conversation.belongs_to(auth.fingerprint, self.name)
        chat_id = conversation.chat_id if reuse and conversation else "0"
        character_id = conversation.character_id if conversation else DEFAULT_CHARACTER_ID
        if conversation is not None and not reuse:
            log.info(
                "conversation %s was made with another login; starting a new one",
                conversation.chat_id,
            )
        fields = {
            "characterID": character_id,
            "msgContent": text,
            "chatID": chat_id,
            "searchMode": "0",
        }
        signature = yy(auth.path_and_query, body_to_yy(character_id, text, chat_id), auth.timestamp)
        assembler = AnswerAssembler(
            token_fingerprint=auth.fingerprint, character_id=character_id, requested_chat_id=chat_id
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        total_deadline = started + self._timeouts.total
        log.debug(
            "asking Hailuo (login %s, chat %s, %d chars)", auth.fingerprint, chat_id, len(text)
        )

        response: aiohttp.ClientResponse | None = None
        clean_end = False
        try:
            try:
                async with asyncio.timeout_at(
                    min(started + self._timeouts.first_event, total_deadline)
                ):
                    response = await self.session.post(
                        self.base_url + auth.path_and_query,
                        data=_multipart(fields),
                        headers=_headers(auth, signature),
                        proxy=self._proxy,
                        allow_redirects=False,
                    )
            except TimeoutError:
                raise UpstreamUnavailable(
                    f"Hailuo did not answer within {self._timeouts.first_event:g} s"
                ) from None
            except aiohttp.ClientError as exc:
                raise UpstreamUnavailable(f"cannot reach Hailuo: {describe_error(exc)}") from None

            await _raise_for_status(response)

            decoder = SseDecoder()
            last_event = started
            got_event = False
            while True:
                phase = self._timeouts.idle if got_event else self._timeouts.first_event
                deadline = min(last_event + phase, total_deadline)
                try:
                    async with asyncio.timeout_at(deadline):
                        chunk = await response.content.readany()
                except TimeoutError:
                    raise self._silence(
                        assembler, got_event, loop.time() >= total_deadline
                    ) from None
                except aiohttp.ClientError as exc:
                    raise StreamInterrupted(
                        f"the connection to Hailuo broke: {describe_error(exc)}",
                        partial_text=assembler.text,
                        conversation=assembler.conversation,
                    ) from None
                try:
                    sse_events = decoder.feed(chunk) if chunk else decoder.flush()
                except SseTooLarge as exc:
                    raise UpstreamError(
                        str(exc), partial_text=assembler.text, conversation=assembler.conversation
                    ) from None
                if sse_events:
                    got_event = True
                    last_event = loop.time()
                for sse in sse_events:
                    for event in assembler.handle(sse):
                        if isinstance(event, Finished):
                            clean_end = await drain(response, chunk_was_eof=not chunk)
                        yield event
                        if isinstance(event, Finished):
                            return
                if not chunk:
                    raise StreamInterrupted(
                        "Hailuo closed the stream before the answer was complete",
                        partial_text=assembler.text,
                        conversation=assembler.conversation,
                    )
        finally:
            if response is not None:
                if clean_end:
                    response.release()
                else:
                    response.close()

    def _silence(self, assembler: AnswerAssembler, got_event: bool, total: bool) -> UpstreamFailure:
        if total:
            reason = f"the answer took longer than {self._timeouts.total:g} s"
        elif got_event:
            reason = f"Hailuo went silent for {self._timeouts.idle:g} s"
        else:
            reason = f"Hailuo sent nothing for {self._timeouts.first_event:g} s"
        if not assembler.text and not got_event:
            return UpstreamUnavailable(reason)
        return StreamInterrupted(
            reason, partial_text=assembler.text, conversation=assembler.conversation
        )


def hailuo_auth(credentials: Credentials) -> AuthState:
    if not isinstance(credentials, AuthState):
        raise AuthRejected(
            f"the stored login is for {credentials.UPSTREAM}, not Hailuo: log in again"
        )
    return credentials


def _multipart(fields: dict[str, str]) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        form.add_field(name, value)
    return form


def _headers(auth: AuthState, signature: str) -> dict[str, str]:
    headers = {
        name: value for name, value in auth.headers.items() if name not in _REQUEST_OWNED_HEADERS
    }
    headers["accept"] = "text/event-stream"
    headers["token"] = auth.token
    headers["yy"] = signature
    if auth.cookies:
        headers["cookie"] = "; ".join(f"{name}={value}" for name, value in auth.cookies.items())
    return headers


async def _raise_for_status(response: aiohttp.ClientResponse) -> None:
    status = response.status
    content_type = response.content_type
    if status == 200 and content_type != "application/json":
        return
    body = await _read_json(response)
    info = body.get("statusInfo") if isinstance(body.get("statusInfo"), dict) else {}
    code = info.get("code") if isinstance(info, dict) else None
    message = str(info.get("message") or response.reason or "") if isinstance(info, dict) else ""
    if status == 407:
        raise UpstreamUnavailable("the proxy asked for credentials (407): check HAILUO_PROXY")
    if status == 403 and content_type == "text/html":
        # A CDN's challenge page, not Hailuo's verdict on the login.
        raise UpstreamUnavailable("Hailuo answered with a challenge page (403)")
    if status in (401, 403):
        raise AuthRejected(
            f"Hailuo refused the login ({status}): {message}".rstrip(": "), status=status
        )
    if status == 429:
        raise RateLimited(
            "Hailuo is rate limiting this account",
            retry_after=_retry_after(response.headers.get("Retry-After"), body),
        )
    if status >= 500:
        raise UpstreamUnavailable(
            f"Hailuo is unavailable ({status} {response.reason or ''})".strip()
        )
    if code == SIGNATURE_ERROR_CODE or str(code) == str(SIGNATURE_ERROR_CODE):
        raise SignatureRejected(f"Hailuo rejected the request signature: {message}")
    if status == 200 and code in (0, "0", None):
        raise UpstreamError("Hailuo answered with JSON instead of a stream")
    if _AUTH_MESSAGE.search(message):
        raise AuthRejected(f"Hailuo refused the login: {message}", status=status)
    numeric = int(str(code)) if str(code).lstrip("-").isdigit() else None
    raise UpstreamError(f"Hailuo answered {status}: {message or 'no details'}", code=numeric)


async def _read_json(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        async with asyncio.timeout(10):
            raw = await response.content.read(64 * 1024)
        data = json.loads(raw)
    except (TimeoutError, ValueError, aiohttp.ClientError):
        return {}
    return data if isinstance(data, dict) else {}


def _retry_after(header: str | None, body: dict[str, Any]) -> float | None:
    for candidate in (header, body.get("retry_after")):
        try:
            if candidate is not None:
                return max(0.0, float(candidate))
        except (TypeError, ValueError):
            continue
    return None
