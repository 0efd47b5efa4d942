"""Markdown from Hailuo → Telegram text + entities, in parts that each fit one message.

Entities instead of a parse_mode string mean "can't parse entities" cannot happen, and links
Telegram would refuse ("Wrong HTTP URL": anchors, relative paths, `javascript:`) lose their link
and keep their words. Parts are cut in the Markdown source (at a paragraph, else a line, else a
space), so a part, once sent, never changes as the answer grows; a code block cut in two is
closed and reopened.

Hostile input stays cheap: what is sealed is never rendered again, a part is looked for in a
window of the source a few messages long (so each render is small, however long the answer),
nesting deeper than `MAX_NESTING` is flattened before rendering (a `- - - - …` list bomb renders
quadratically otherwise), and a rendering that still grows past `GROWTH_LIMIT` times its source
falls back to plain text.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import telegramify_markdown
from aiogram.types import MessageEntity
from telegramify_markdown.entity import utf16_len

MESSAGE_LIMIT = 4096
# Room for a status line ("stopped", "interrupted") under the last part.
PART_BUDGET = MESSAGE_LIMIT - 96
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$", re.MULTILINE)
# A part is looked for in this much source at a time (rendering shrinks Markdown; a window
# that still fits is sealed whole).
WINDOW = PART_BUDGET * 3
REASONING_LIMIT = 1500  # of the reasoning shown above an answer (SHOW_REASONING)
INLINE_SOURCE = PART_BUDGET  # less unsealed source than this renders on the event loop
MAX_NESTING = 8
GROWTH_LIMIT = 3
_NESTING = re.compile(r"^([ \t]*)((?:(?:[-*+]|\d{1,9}[.)])(?:[ \t]+|$)|>[ \t]*)+)")
_MARKER = re.compile(r"[-*+]|\d{1,9}[.)]|>")
_ANY_FENCE = re.compile(r"^[ \t>]*(`{3,}|~{3,})(.*)$")
MAX_ENTITIES = 1000  # more than this in one part: plain text (rendering and Telegram both balk)
# A host Telegram resolves: a dotted domain name (IDN too), localhost, IPv4 or IPv6.
_HOST = re.compile(
    r"^(?:[\w-]+\.)+[\w-]{2,}\.?$|^localhost$|^\d{1,3}(?:\.\d{1,3}){3}$|^[0-9a-f.]*:[0-9a-f:.]*$"
)
MAX_URL = 2048
_SCHEMELESS = re.compile(r"^[\w-]+(?:\.[\w-]+)+(?:[/?#]|$)")  # a host name first, then a path


_RICH_ESCAPE = re.compile(r"([\\`*_~|=\[\]()#>$!-])")


def rich_escaped(text: str) -> str:
    """Plain text (a note, the reasoning) as rich Markdown that shows it verbatim."""
    return _RICH_ESCAPE.sub(r"\\\1", text)


@dataclass(frozen=True, slots=True)
class Frame:
    """What one Telegram message shows: text with entities, or (`rich`) rich Markdown."""

    text: str
    entities: tuple[MessageEntity, ...] = ()
    rich: str = ""  # "markdown" or "html": the `InputRichMessage` field that carries `text`

    @property
    def length(self) -> int:
        return len(self.text) if self.rich else utf16_len(self.text)

    def above(self, other: Frame) -> Frame:
        """This frame, a blank line, then `other` (its entities shifted)."""
        if not self.text:
            return other
        if not other.text:
            return self
        offset = utf16_len(self.text + "\n\n")
        shifted = tuple(
            entity.model_copy(update={"offset": entity.offset + offset})
            for entity in other.entities
        )
        return Frame(f"{self.text}\n\n{other.text}", (*self.entities, *shifted))

    def with_note(self, note: str) -> Frame:
        """Append an italic status line, e.g. "stopped"."""
        if not note:
            return self
        separator = "\n\n" if self.text else ""
        if self.rich:
            lines = [f"_{rich_escaped(line)}_" if line.strip() else "" for line in note.split("\n")]
            return Frame(self.text + separator + "\n".join(lines), rich=self.rich)
        offset = utf16_len(self.text + separator)
        italic = MessageEntity(type="italic", offset=offset, length=utf16_len(note))
        return Frame(self.text + separator + note, (*self.entities, italic))


def reasoning_block(reasoning: str, limit: int = REASONING_LIMIT) -> Frame:
    """The model's reasoning as a collapsed (expandable) quote, shortened to `limit`."""
    text = reasoning.strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    if not text:
        return Frame("")
    return Frame(
        text, (MessageEntity(type="expandable_blockquote", offset=0, length=utf16_len(text)),)
    )


def render(markdown: str) -> Frame:
    source = flatten_nesting(markdown)
    try:
        text, entities = telegramify_markdown.convert(source, latex_escape=False)
    except Exception:  # the converter must never cost us an answer: fall back to plain text
        return Frame(markdown)
    if len(text) > GROWTH_LIMIT * len(markdown) + 64:
        return Frame(markdown)  # something still blew up: plain text is better than a flood
    if len(entities) > MAX_ENTITIES:
        return Frame(markdown)
    converted = tuple(
        MessageEntity(
            type=entity.type,
            offset=entity.offset,
            length=entity.length,
            url=link_target(entity.url) if entity.type == "text_link" else entity.url,
            language=entity.language,
        )
        for entity in entities
        if entity.length > 0 and (entity.type != "text_link" or link_target(entity.url))
    )
    if not text.strip() and markdown.strip():
        return Frame(markdown)
    return Frame(text, converted)


def link_target(url: str | None) -> str | None:
    """The URL as Telegram takes it for a text_link, or None: then the words stay, unlinked.
    A URL without a scheme but with a real host (`www.example.org/x`) is taken as http."""
    if not url or len(url) > MAX_URL or any(ch.isspace() or ord(ch) < 32 for ch in url):
        return None
    if "://" not in url and _SCHEMELESS.match(url):
        url = "http://" + url
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme in ("tg", "ton"):
        return url if parts.netloc or parts.path else None
    if scheme in ("http", "https") and host is not None and _HOST.match(host):
        return url
    return None


def flatten_nesting(markdown: str) -> str:
    """A line that opens more than MAX_NESTING lists or quotes at once (`- - - - …`, `>>>>…`:
    the bombs that render quadratically) keeps MAX_NESTING of them; the words stay. Code blocks
    (fenced at any indentation, in quotes too) and nesting by indentation are left alone: the
    cost of indentation is in its own length."""
    if len(markdown) < 2 * MAX_NESTING:
        return markdown
    lines = markdown.split("\n")
    fence: str | None = None
    for index, line in enumerate(lines):
        fenced = _ANY_FENCE.match(line)
        if fenced is not None:
            marker = fenced.group(1)
            if fence is None:
                fence = marker
            elif _closes(fence, marker, fenced.group(2)):
                fence = None
            continue
        if fence is not None:
            continue
        match = _NESTING.match(line)
        if match is None:
            continue
        markers = _MARKER.findall(match.group(2))
        if len(markers) <= MAX_NESTING:
            continue
        lines[index] = match.group(1) + " ".join(markers[:MAX_NESTING]) + " " + line[match.end() :]
    return "\n".join(lines)


@dataclass
class PartSplitter:
    """Keeps the sealed parts of a growing answer; only the last part keeps changing."""

    budget: int = PART_BUDGET
    sealed: list[Frame] = field(default_factory=list)
    first_budget: int | None = None  # a smaller first part (room for the reasoning above it)
    _start: int = 0  # where the open part begins in the source
    _reopen: str = ""  # a fence to reopen at the top of the open part
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def _budget_now(self) -> int:
        if not self.sealed and self.first_budget is not None:
            return self.first_budget
        return self.budget

    def cheap(self, markdown: str) -> bool:
        """Splitting `markdown` now takes about a millisecond (little unsealed text, and no
        earlier call still running in a thread that this one would have to wait for)."""
        return len(markdown) - self._start <= INLINE_SOURCE and not self._lock.locked()

    def parts(self, markdown: str) -> list[Frame]:
        """All parts for the answer so far: sealed ones, then the open one. Thread-safe: a
        call still running in a worker thread finishes before the next one starts."""
        with self._lock:
            return self._parts(markdown)

    def _parts(self, markdown: str) -> list[Frame]:
        while True:
            source = self._reopen + markdown[self._start :]
            if len(source) <= WINDOW:
                frame = render(source)
                if frame.length <= self._budget_now:
                    return [*self.sealed, frame]
            self._seal(markdown, source[:WINDOW])

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
            if render(source[:middle] + "\n" + "`" * 3).length <= self._budget_now - 8:
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
        elif _closes(open_fence[0], marker, info):
            open_fence = None
    return open_fence


def _closes(opening: str, marker: str, info: str) -> bool:
    """Does a fence line (`marker`, `info`) close the code block opened by `opening`?"""
    return marker[0] == opening[0] and len(marker) >= len(opening) and not info.strip()
