"""The message stream's frames → typed answer events (protocol reference §3.1).

Kept apart from HTTP so the rules live in one small state machine. The numeric `type` codes are
undocumented (§3.1), so frames are told apart by their keys:

- `agent_message_chunk`: `msg_content` and `thinking_content` are deltas (four sources; one reads
  them as cumulative — a chunk that starts with everything shown so far is taken as cumulative,
  which also drops the quirk of the whole answer re-sent once at the end); `finish: true` ends the
  answer, with `finish_reason: "error"` a failure;
- `agent_message`: a whole message — the echo of the user's turn (ignored), the final assistant
  message (anything it has beyond the deltas is added), or an error (`finish_reason: "error"`,
  the text in `msg_content`, e.g. a quota message);
- anything else (heartbeats, `type: 10`) is ignored; a literal `[DONE]` ends the answer; error
  keys (`error`, `error_msg`, a non-zero `status_code`) fail it.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from bot.upstream import (
    Conversation,
    Finished,
    RateLimited,
    ReasoningDelta,
    TextDelta,
    UpstreamError,
    UpstreamEvent,
)

log = logging.getLogger(__name__)

# A chunk repeating the answer so far is only recognised past this length: a short answer may
# well continue with the same few characters.
REPEAT_MIN_CHARS = 16
_QUOTA = re.compile(r"quota|credit|2056|token plan|subscribe|insufficient|额度|积分", re.I)


class FrameAssembler:
    def __init__(self, conversation: Conversation) -> None:
        self.conversation = conversation
        self.text = ""
        self.reasoning = ""
        self.finished = False

    def handle(self, data: str) -> list[UpstreamEvent]:
        if self.finished:
            return []
        data = data.strip()
        if data == "[DONE]":
            return self._finish()
        try:
            frame = json.loads(data)
        except ValueError:
            if "\n" in data:  # frames not separated by a blank line: one per line
                return [event for line in data.splitlines() for event in self.handle(line)]
            log.warning("skipping a malformed frame from MiniMax Agent: %.120r", data)
            return []
        if not isinstance(frame, dict):
            return []
        self._check_error(frame)
        chunk = frame.get("agent_message_chunk")
        if isinstance(chunk, dict):
            return self._chunk(chunk)
        message = frame.get("agent_message")
        if isinstance(message, dict):
            return self._message(message)
        return []  # heartbeats and frames we have no use for

    def _chunk(self, chunk: dict[str, Any]) -> list[UpstreamEvent]:
        if chunk.get("role") == "user":
            return []
        events: list[UpstreamEvent] = []
        thinking = _text(chunk.get("thinking_content") or chunk.get("reasoning_content"))
        if thinking:
            delta = _delta(self.reasoning, thinking)
            if delta:
                self.reasoning += delta
                events.append(ReasoningDelta(delta, self.reasoning))
        content = _text(chunk.get("msg_content"))
        if content:
            events += self._add_text(_delta(self.text, content))
        if chunk.get("finish") is True:
            if chunk.get("finish_reason") == "error":
                raise self._failure(content or "the agent reported an error")
            events += self._finish()
        return events

    def _message(self, message: dict[str, Any]) -> list[UpstreamEvent]:
        if message.get("role") == "user":
            return []  # the echo of the question
        content = _text(message.get("msg_content"))
        reason = message.get("finish_reason")
        if reason == "error":
            raise self._failure(content or "the agent reported an error")
        if not reason:
            return []  # an intermediate whole message: the chunks carry the text
        events: list[UpstreamEvent] = []
        if content.startswith(self.text) and len(content) > len(self.text):
            events += self._add_text(content[len(self.text) :])
        events += self._finish()
        return events

    def _add_text(self, delta: str) -> list[UpstreamEvent]:
        if not delta:
            return []
        self.text += delta
        return [TextDelta(delta, self.text)]

    def _finish(self) -> list[UpstreamEvent]:
        self.finished = True
        return [Finished(self.text, self.conversation)]

    def _check_error(self, frame: dict[str, Any]) -> None:
        base = frame.get("base_resp") if isinstance(frame.get("base_resp"), dict) else {}
        assert isinstance(base, dict)
        code = frame.get("status_code", base.get("status_code"))
        message = frame.get("error_msg") or frame.get("error") or frame.get("status_msg")
        message = message or base.get("status_msg")
        if code not in (None, 0, "0") or (frame.get("error") or frame.get("error_msg")):
            raise self._failure(str(message or f"error {code}"), code=code)

    def _failure(self, message: str, code: object = None) -> UpstreamError | RateLimited:
        """An error inside a 200 stream: quota and credit walls are the upstream's own words."""
        if _QUOTA.search(message):
            return RateLimited(message, partial_text=self.text, conversation=self.conversation)
        numeric = int(str(code)) if str(code).lstrip("-").isdigit() else None
        return UpstreamError(
            message, code=numeric, partial_text=self.text, conversation=self.conversation
        )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _delta(so_far: str, piece: str) -> str:
    """What `piece` adds: itself, or (when it repeats everything so far) only its tail."""
    if len(so_far) >= REPEAT_MIN_CHARS and piece.startswith(so_far):
        return piece[len(so_far) :]
    if len(so_far) >= 4 and piece == so_far:
        return ""
    return piece
