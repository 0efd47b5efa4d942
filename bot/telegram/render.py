"""Markdown from Hailuo → Telegram text + entities, in parts that each fit one message.

Entities instead of a parse_mode string mean "can't parse entities" cannot happen. Parts are cut
in the Markdown source (at a paragraph, else a line, else a space), so a part, once sent, never
changes as the answer grows; a code block cut in two is closed and reopened.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import telegramify_markdown
from aiogram.types import MessageEntity
from telegramify_markdown.entity import utf16_len

MESSAGE_LIMIT = 4096
# Room for a status line ("stopped", "interrupted") under the last part.
PART_BUDGET = MESSAGE_LIMIT - 96
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Frame:
    """What one Telegram message shows."""

    text: str
    entities: tuple[MessageEntity, ...] = ()

    @property
    def length(self) -> int:
        return utf16_len(self.text)

    def with_note(self, note: str) -> Frame:
        """Append an italic status line, e.g. "stopped"."""
        if not note:
            return self
        separator = "\n\n" if self.text else ""
        offset = utf16_len(self.text + separator)
        italic = MessageEntity(type="italic", offset=offset, length=utf16_len(note))
        return Frame(self.text + separator + note, (*self.entities, italic))


def render(markdown: str) -> Frame:
    try:
        text, entities = telegramify_markdown.convert(markdown, latex_escape=False)
    except Exception:  # the converter must never cost us an answer: fall back to plain text
        return Frame(markdown)
    converted = tuple(
        MessageEntity(
            type=entity.type,
            offset=entity.offset,
            length=entity.length,
            url=entity.url,
            language=entity.language,
        )
        for entity in entities
        if entity.length > 0
    )
    if not text.strip() and markdown.strip():
        return Frame(markdown)
    return Frame(text, converted)


@dataclass
class PartSplitter:
    """Keeps the sealed parts of a growing answer; only the last part keeps changing."""

    budget: int = PART_BUDGET
    sealed: list[Frame] = field(default_factory=list)
    _start: int = 0  # where the open part begins in the source
    _reopen: str = ""  # a fence to reopen at the top of the open part

    def parts(self, markdown: str) -> list[Frame]:
        """All parts for the answer so far: sealed ones, then the open one."""
        while True:
            source = self._reopen + markdown[self._start :]
            frame = render(source)
            if frame.length <= self.budget:
                return [*self.sealed, frame]
            self._seal(markdown, source)

    def _seal(self, markdown: str, source: str) -> None:
        cut = self._cut(source)
        head = source[:cut]
        fence = _open_fence(head)
        closing = ""
        if fence is not None:
            closing = ("" if head.endswith("\n") else "\n") + fence[0]
        self.sealed.append(render(head + closing))
        consumed = cut - len(self._reopen)
        self._start += max(consumed, 1)
        self._reopen = f"{fence[0]}{fence[1]}\n" if fence is not None else ""
        if fence is not None:
            # Don't start the next part with the newline that ended the cut line.
            while self._start < len(markdown) and markdown[self._start] == "\n":
                self._start += 1

    def _cut(self, source: str) -> int:
        """The longest prefix that renders within budget, ending at the best boundary."""
        low, high = len(self._reopen) + 1, len(source)
        # Rendering shrinks Markdown, so a prefix whose rendering fits is found by bisection.
        while low < high:
            middle = (low + high + 1) // 2
            if render(source[:middle] + "\n" + "`" * 3).length <= self.budget - 8:
                low = middle
            else:
                high = middle - 1
        limit = low
        window = source[:limit]
        floor = len(self._reopen) + limit // 2
        for boundary in ("\n\n", "\n", " "):
            position = window.rfind(boundary)
            if position > floor:
                return position + len(boundary)
        return max(limit, len(self._reopen) + 1)


def _open_fence(text: str) -> tuple[str, str] | None:
    """The fence (marker, info string) left open at the end of `text`, if any."""
    open_fence: tuple[str, str] | None = None
    for match in _FENCE.finditer(text):
        marker, info = match.group(1), match.group(2).strip()
        if open_fence is None:
            open_fence = (marker, info)
        elif marker[0] == open_fence[0][0] and len(marker) >= len(open_fence[0]) and not info:
            open_fence = None
    return open_fence
