"""An incremental server-sent-events decoder that works on raw bytes.

Bytes are split into lines before decoding, so a network chunk that ends inside a multi-byte
character never produces a broken character.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_EVENT_BYTES = 16 * 1024 * 1024


class SseTooLarge(ValueError):
    """A single event grew past MAX_EVENT_BYTES: the peer is not speaking SSE."""


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: str


class SseDecoder:
    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._buffer = bytearray()
        self._event = ""
        self._data: list[str] = []
        self._event_bytes = 0
        self._max_event_bytes = max_event_bytes

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._buffer += chunk
        events: list[SseEvent] = []
        start = 0
        while (end := self._buffer.find(b"\n", start)) != -1:
            line = bytes(self._buffer[start:end]).rstrip(b"\r")
            start = end + 1
            event = self._line(line)
            if event is not None:
                events.append(event)
        del self._buffer[:start]
        if len(self._buffer) + self._event_bytes > self._max_event_bytes:
            raise SseTooLarge(f"an event exceeded {self._max_event_bytes} bytes")
        return events

    def flush(self) -> list[SseEvent]:
        """At end of stream: dispatch a last event that lacked its blank line."""
        events = self.feed(b"\n") if self._buffer else []
        event = self._dispatch()
        return [*events, event] if event is not None else events

    def _line(self, line: bytes) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(b":"):
            return None
        self._event_bytes += len(line)
        name, _, value = line.partition(b":")
        text = value.removeprefix(b" ").decode("utf-8", errors="replace")
        if name == b"event":
            self._event = text
        elif name == b"data":
            self._data.append(text)
        return None

    def _dispatch(self) -> SseEvent | None:
        if not self._data and not self._event:
            return None
        event = SseEvent(self._event or "message", "\n".join(self._data))
        self._event, self._data, self._event_bytes = "", [], 0
        return event
