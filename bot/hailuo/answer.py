"""Turns Hailuo's SSE events (cumulative content) into typed answer events.

Kept apart from HTTP so the protocol rules — deltas from cumulative text, a held-back U+FFFD,
`isEnd`/`type 8`, `statusInfo` errors, malformed lines — are one small state machine.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from bot.upstream import (
    Conversation,
    ConversationStarted,
    Finished,
    TextDelta,
    TitleGenerated,
    UpstreamError,
)
from bot.upstream import UpstreamEvent as HailuoEvent
from bot.upstream.sse import SseEvent

log = logging.getLogger(__name__)

REPLACEMENT_CHAR = "\ufffd"
FINAL_IS_END = 0
FINAL_TYPE = 8
STATUS_TYPE_EXEMPT = 3


class AnswerAssembler:
    def __init__(self, *, token_fingerprint: str, character_id: str, requested_chat_id: str):
        self._fingerprint = token_fingerprint
        self._character_id = character_id
        self._requested_chat_id = requested_chat_id
        self.conversation: Conversation | None = None
        self.text = ""
        self.message_id = ""
        self.title = ""
        self.finished = False

    def handle(self, sse: SseEvent) -> list[HailuoEvent]:
        if sse.event == "close_chunk":
            return self._finish()
        if sse.event not in ("send_result", "message_result"):
            log.debug("ignoring unknown Hailuo event %r", sse.event)
            return []
        try:
            payload = json.loads(sse.data)
        except ValueError:
            log.warning("skipping a malformed %s line from Hailuo: %.120r", sse.event, sse.data)
            return []
        if not isinstance(payload, dict):
            log.warning("skipping a %s event that is not an object: %.120r", sse.event, sse.data)
            return []
        if sse.event == "send_result":
            return self._send_result(payload)
        return self._message_result(payload)

    def _send_result(self, payload: dict[str, Any]) -> list[HailuoEvent]:
        self._check_status(payload)
        result = _dig(payload, "data", "sendResult")
        events: list[HailuoEvent] = []
        events += self._conversation(result.get("chatID"))
        title = result.get("chatTitle")
        if isinstance(title, str) and title.strip() and title != self.title:
            self.title = title.strip()
            events.append(TitleGenerated(self.title))
        return events

    def _message_result(self, payload: dict[str, Any]) -> list[HailuoEvent]:
        message_type = payload.get("type")
        if message_type != STATUS_TYPE_EXEMPT:
            self._check_status(payload)
        result = _dig(payload, "data", "messageResult")
        events = self._conversation(result.get("chatID"))
        if isinstance(result.get("msgID"), str | int):
            self.message_id = str(result["msgID"])
        final = result.get("isEnd") == FINAL_IS_END or message_type == FINAL_TYPE
        content = result.get("content")
        if isinstance(content, str):
            delta = self._advance(content, final=final)
            if delta is not None:
                events.append(delta)
        if final:
            events += self._finish()
        return events

    def _advance(self, content: str, *, final: bool) -> TextDelta | None:
        stable = content if final else content.rstrip(REPLACEMENT_CHAR)
        if stable.startswith(self.text):
            delta = stable[len(self.text) :]
        else:
            # Upstream rewrote text it had sent; `text` stays authoritative for renderers.
            common = _common_prefix_length(stable, self.text)
            log.warning("Hailuo rewrote its answer from character %d on", common)
            delta = stable[common:]
        if stable == self.text:
            return None
        self.text = stable
        return TextDelta(delta=delta, text=stable)

    def _conversation(self, chat_id: object) -> list[HailuoEvent]:
        if self.conversation is not None or not isinstance(chat_id, str | int):
            return []
        chat_id = str(chat_id)
        if not chat_id or chat_id == "0":
            return []
        self.conversation = Conversation(
            chat_id=chat_id, token_fingerprint=self._fingerprint, character_id=self._character_id
        )
        return [ConversationStarted(self.conversation, is_new=chat_id != self._requested_chat_id)]

    def _finish(self) -> list[HailuoEvent]:
        if self.finished:
            return []
        self.finished = True
        return [
            Finished(text=self.text, conversation=self.conversation, message_id=self.message_id)
        ]

    def _check_status(self, payload: dict[str, Any]) -> None:
        status = payload.get("statusInfo")
        if not isinstance(status, dict):
            return
        code = status.get("code", 0)
        if code in (0, "0", None):
            return
        message = str(status.get("message") or "no message")
        raise UpstreamError(
            f"Hailuo reported error {code}: {message}",
            code=int(code) if str(code).lstrip("-").isdigit() else None,
            partial_text=self.text,
            conversation=self.conversation,
        )


def _dig(payload: dict[str, Any], *keys: str) -> dict[str, Any]:
    node: Any = payload
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def _common_prefix_length(a: str, b: str) -> int:
    length = 0
    for left, right in zip(a, b, strict=False):
        if left != right:
            break
        length += 1
    return length
