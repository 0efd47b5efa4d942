"""Separates inline `<think>…</think>` reasoning from the answer in streamed `content`.

MiniMax's M-series models put their reasoning inside `content` unless the server honours
`reasoning_split`; some OpenAI-compatible servers never split it. A raw think block must never
reach the user as answer text, and a tag can be cut anywhere between two chunks ("<th" + "ink>"),
so the splitter holds back a chunk's tail only while it can still become a tag.
"""

from __future__ import annotations

OPEN = "<think>"
CLOSE = "</think>"
BLOCK_SEPARATOR = "\n\n"


def _tag_prefix_length(text: str, tags: tuple[str, ...]) -> int:
    """The length of the longest end of `text` that is the start (not the whole) of a tag."""
    longest = max(len(tag) for tag in tags) - 1
    for size in range(min(len(text), longest), 0, -1):
        tail = text[-size:]
        if any(len(tag) > size and tag.startswith(tail) for tag in tags):
            return size
    return 0


class ThinkSplitter:
    """Feed `content` chunks in order; get back (answer_delta, reasoning_delta) for each.

    Rules, the same however the text is cut into chunks:
    - text inside `<think>…</think>` is reasoning, also when the block is never closed;
    - several blocks are reasoning each, joined by a blank line;
    - the answer never starts with whitespace (the newlines around a leading think block);
    - a stray `</think>` outside a block is dropped (some servers omit the opening tag);
    - only a tail that could still become a tag is held back until the next chunk.
    """

    def __init__(self) -> None:
        self._pending = ""  # a possible tag prefix, or undecided text
        self._inside = False
        self._answer_started = False
        self._reasoning_started = False
        self._block_fresh = False  # in a block whose text has not started yet

    @property
    def inside_think(self) -> bool:
        return self._inside

    def feed(self, chunk: str) -> tuple[str, str]:
        self._pending += chunk
        answer: list[str] = []
        reasoning: list[str] = []
        while self._pending:
            if self._inside:
                end = self._pending.find(CLOSE)
                if end >= 0:
                    reasoning.append(self._reasoning(self._pending[:end]))
                    self._pending = self._pending[end + len(CLOSE) :]
                    self._inside = False
                    continue
                keep = _tag_prefix_length(self._pending, (CLOSE,))
                reasoning.append(self._reasoning(self._pending[: len(self._pending) - keep]))
                self._pending = self._pending[len(self._pending) - keep :]
                break
            tag, at = self._next_tag()
            if tag:
                answer.append(self._answer(self._pending[:at]))
                self._pending = self._pending[at + len(tag) :]
                if tag == OPEN:
                    self._inside = True
                    self._block_fresh = True
                continue
            keep = _tag_prefix_length(self._pending, (OPEN, CLOSE))
            answer.append(self._answer(self._pending[: len(self._pending) - keep]))
            self._pending = self._pending[len(self._pending) - keep :]
            break
        return "".join(answer), "".join(reasoning)

    def flush(self) -> tuple[str, str]:
        """The held-back tail at the end of the stream: reasoning inside an unclosed block,
        else literal answer text (a lone "<th" that never became a tag)."""
        rest, self._pending = self._pending, ""
        if self._inside:
            return "", self._reasoning(rest)
        return self._answer(rest), ""

    def _next_tag(self) -> tuple[str, int]:
        """The first complete tag in the pending text and where it starts ("" if none)."""
        found = [(at, tag) for tag in (OPEN, CLOSE) if (at := self._pending.find(tag)) >= 0]
        if not found:
            return "", -1
        at, tag = min(found)
        return tag, at

    def _answer(self, text: str) -> str:
        if not self._answer_started:
            text = text.lstrip()
            self._answer_started = bool(text)
        return text

    def _reasoning(self, text: str) -> str:
        if self._block_fresh:
            text = text.lstrip()
            if not text:
                return ""
            self._block_fresh = False
            if self._reasoning_started:
                text = BLOCK_SEPARATOR + text
        self._reasoning_started = True
        return text
