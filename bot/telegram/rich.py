"""Answers as Telegram rich messages (Bot API 10.1+): when an answer becomes one, how a growing
answer is cut into rich parts, and how a partial frame is made valid before it is sent.

Why the `markdown` field (and not `blocks` built from a parsed tree): the model already writes
Markdown, and Telegram's rich Markdown is the dialect LLMs write (tables, `$math$`, headings,
fenced code), so the answer goes as it came — no converter of ours between the model and the
chat that could drop a construct Telegram renders natively. The cost is that a *partial* frame
must be valid: `closed()` balances what a cut-off stream leaves open (a code fence, a `$$`
block, inline markers, a half-written table row) before each frame; and whatever Telegram still
refuses makes the answer fall back to the entity path (`streaming.py`), which never loses it.
Building `blocks` would mean a Markdown parser plus a mapping onto ~25 block types whose exact
JSON Telegram may still change; the maintained converters on PyPI (tg-rich-converter) target
rich HTML and its escaping rules, one more dialect to get wrong. Parts are cut at block
boundaries only, so a table row, a formula or a fence line is never split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bot.telegram.render import MESSAGE_LIMIT, Frame, flatten_nesting, rich_escaped

RICH_LIMIT = 32_768  # characters of one rich message
BLOCK_LIMIT = 500  # blocks of one rich message, nested ones included
COLUMN_LIMIT = 20  # columns of a table
DEPTH_LIMIT = 16  # levels of nested blocks and formatting
_QUOTE_PREFIX = re.compile(r"^[ \t>]*")
# Room under the last part for a status line, and a margin for the closers `closed()` adds.
RICH_BUDGET = RICH_LIMIT - 512
BLOCK_BUDGET = BLOCK_LIMIT - 20
REASONING_LIMIT = 1500
MARKDOWN, HTML = "markdown", "html"

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)+\|?\s*$", re.MULTILINE)
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+\S", re.MULTILINE)
_BLOCK_MATH = re.compile(r"^\s*\$\$|\$\$[^$\n]+\$\$", re.MULTILINE)
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?=\S)[^$\n]*\\[A-Za-z]+[^$\n]*(?<=\S)\$(?!\$)")
_DEEP_LIST = re.compile(r"^(?: {4,}|\t{2,}| {2,}\t)(?:[-*+]|\d{1,9}[.)])[ \t]", re.MULTILINE)
# Closed at the end of a live frame when open. Not `==` or `||`: they are as often comparisons
# and empty table cells as marks, and an extra one would show.
_INLINE_MARKERS = ("**", "~~", "`")


def structured(markdown: str) -> bool:
    """Structure the entity path renders badly: a table, math, headings, nested lists."""
    return bool(
        _TABLE_SEPARATOR.search(markdown)
        or _BLOCK_MATH.search(markdown)
        or _INLINE_MATH.search(markdown)
        or _HEADING.search(markdown)
        or _DEEP_LIST.search(markdown)
    )


def wanted(markdown: str, mode: str) -> bool:
    """RICH_MESSAGES: `on` always, `off` never, `auto` when the answer has structure or is
    longer than one plain message (it would be cut into several)."""
    if mode == "off":
        return False
    prose = _prose_lines(markdown)  # one pass over the text for both limits
    if too_wide(prose) or too_deep(prose):
        return False
    return mode == "on" or len(markdown) > MESSAGE_LIMIT * 3 // 4 or structured(markdown)


def too_deep(prose: list[str]) -> bool:
    """Quotes and indented lists nested past what a rich message takes (16 levels), among
    the lines outside code (code keeps its indentation)."""
    for line in prose:
        prefix = _QUOTE_PREFIX.match(line)
        quotes = prefix.group(0).count(">") if prefix else 0
        if quotes + (len(line) - len(line.lstrip(" "))) // 2 >= DEPTH_LIMIT:
            return True
    return False


def too_wide(prose: list[str]) -> bool:
    """A table with more columns than a rich message takes: the entity path shows it as text."""
    return any(
        line.count("|") - 1 > COLUMN_LIMIT for line in prose if line.lstrip().startswith("|")
    )


def _prose_lines(markdown: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines: list[str] = []
    fence: str | None = None
    for line in markdown.split("\n"):
        match = _FENCE.match(line)
        if fence is None and match is not None:
            fence = match.group(1)
        elif fence is not None and _closes(match, fence):
            fence = None
        elif fence is None:
            lines.append(line)
    return lines


def reasoning_quote(reasoning: str, limit: int = REASONING_LIMIT) -> str:
    """The reasoning above a final answer (SHOW_REASONING), as a quote headed 💭."""
    text = reasoning.strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    if not text:
        return ""
    lines = [rich_escaped(line) for line in text.split("\n")]
    return "> 💭 " + "\n> ".join(lines)


def thinking_frame(reasoning: str, placeholder: str) -> Frame:
    """A draft's thinking block (drafts only), with the latest line of reasoning, or the
    placeholder when there is none to show (the block is never empty)."""
    lines = [line.strip() for line in reasoning.strip().split("\n") if line.strip()]
    latest = lines[-1][-200:] if lines else placeholder
    safe = latest.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return Frame(f"<tg-thinking>{safe}</tg-thinking>", rich=HTML)


def completed(markdown: str) -> str:
    """Whole text (a sealed part, the final answer) with only its open block closed: a code
    fence or a `$$` block the cut left open. Nothing else is touched: no words may change."""
    lines = markdown.split("\n")
    opener = _open_block(lines)
    if opener is None:
        return markdown
    closer = "$$" if opener == "$$" else _FENCE_MARKER.match(opener).group(1)  # type: ignore[union-attr]
    return markdown + ("" if markdown.endswith("\n") else "\n") + closer


def closed(markdown: str) -> str:
    """A live frame made valid: an open fence or `$$` block closed, a table row still being
    written left out until it is whole, open inline markers of the last paragraph closed
    (innermost first). Only for frames that the next one replaces."""
    lines = markdown.split("\n")
    if _open_block(lines) is not None:
        return completed(markdown)
    last = lines[-1].strip()
    in_table = len(lines) > 1 and lines[-2].lstrip().startswith("|")
    if in_table and last.startswith("|") and not last.endswith("|"):
        lines = lines[:-1]  # a row still being written, under the table's other rows
        markdown = "\n".join(lines)
    start = max(markdown.rfind("\n\n"), _last_fence_end(markdown))
    paragraph = markdown[start + 1 :]
    if paragraph.lstrip().startswith("|"):
        return markdown  # table cells: pipes and markers are the table's
    return markdown + _closers(paragraph)


_FENCE_MARKER = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def _open_block(lines: list[str]) -> str | None:
    """The line that opened a code block or a `$$` block still open at the end, if any."""
    opener: str | None = None
    for line in lines:
        match = _FENCE.match(line)
        if opener is None:
            if match is not None:
                opener = line
            elif _math_delimiters(line):
                opener = "$$"
        elif opener == "$$":
            if _math_delimiters(line):
                opener = None
        elif _closes(match, _FENCE_MARKER.match(opener).group(1)):  # type: ignore[union-attr]
            opener = None
    return opener


def _last_fence_end(markdown: str) -> int:
    ends = [m.end() for m in re.finditer(r"^ {0,3}(?:`{3,}|~{3,}).*$", markdown, re.MULTILINE)]
    return ends[-1] if ends else -1


def _closers(paragraph: str) -> str:
    """The markers that close what `paragraph` leaves open, innermost first."""
    opened: list[str] = []
    position = 0
    while position < len(paragraph):
        if paragraph[position] == "\\":
            position += 2
            continue
        for marker in _INLINE_MARKERS:
            if paragraph.startswith(marker, position):
                if opened and opened[-1] == marker:
                    opened.pop()
                elif marker in opened:
                    pass  # crossed markers: left as they are
                else:
                    opened.append(marker)
                position += len(marker)
                break
        else:
            position += 1
        if opened and opened[-1] == "`":
            end = paragraph.find("`", position)
            if end < 0:
                break
            opened.pop()
            position = end + 1
    return "".join(reversed(opened))


@dataclass
class _Block:
    """A unit a part boundary may not cut: a fenced code block, a `$$` block, or a line."""

    text: str
    weight: int  # blocks Telegram counts for it


@dataclass
class RichSplitter:
    """Cuts a growing answer into rich parts at block boundaries (32 768 characters, 500
    blocks each); sealed parts never change, only the last one grows."""

    budget: int = RICH_BUDGET
    blocks: int = BLOCK_BUDGET
    sealed: list[str] = field(default_factory=list)
    consumed: int = 0  # where the open part begins in the source
    reopen: str = ""  # a block reopened at the top of the open part (one cut in two)

    def parts(self, markdown: str, above: str = "", *, final: bool = False) -> list[Frame]:
        """The rich parts for the answer so far; `above` (the reasoning) heads the first. The
        last part of a `final` answer is left as written (its open block closed), a live one
        is made valid with `closed()`."""
        source = flatten_nesting(markdown)
        while True:
            head = f"{above}\n\n" if above and not self.sealed else ""
            tail = self.reopen + source[self.consumed :]
            units = _units(tail)
            if len(head) + len(tail) <= self.budget and _weight(units) <= self.blocks:
                last = completed(head + tail) if final else closed(head + tail)
                return [
                    *(Frame(text, rich=MARKDOWN) for text in self.sealed),
                    Frame(last, rich=MARKDOWN),
                ]
            self._seal(head, tail, units)

    def _seal(self, head: str, tail: str, units: list[_Block]) -> None:
        room, size, weight = self.budget - len(head), 0, 0
        cut = paragraph_cut = 0
        for unit in units:
            if size + len(unit.text) + 1 > room or weight + unit.weight > self.blocks:
                break
            size += len(unit.text) + 1
            weight += unit.weight
            cut = size
            if not unit.text.strip() and size > room // 2:
                paragraph_cut = size
        cut = paragraph_cut or cut
        reopen = ""
        if cut == 0:  # one block longer than a whole part: cut it at a line end
            cut = tail.rfind("\n", 0, room) + 1 or room
            opener = _open_block(tail[:cut].split("\n"))
            if opener is not None:
                reopen = f"{opener}\n"  # the fence with its language, or `$$`
        elif tail[cut:].lstrip(" ").startswith("|"):
            reopen = _table_header(tail[:cut])  # a table cut between rows keeps its header
        piece = tail[:cut].rstrip("\n")
        self.sealed.append(completed(head + piece))
        self.consumed += max(cut - len(self.reopen), 1)
        self.reopen = reopen


def _table_header(text: str) -> str:
    """The header and separator rows of the table `text` ends in ("" if it ends in none)."""
    lines = text.rstrip("\n").split("\n")
    start = len(lines)
    while start > 0 and lines[start - 1].lstrip().startswith("|"):
        start -= 1
    table = lines[start:]
    if len(table) >= 3 and _TABLE_SEPARATOR.fullmatch(table[1]):
        return f"{table[0]}\n{table[1]}\n"
    return ""


def _weight(units: list[_Block]) -> int:
    return sum(unit.weight for unit in units)


def _math_delimiters(line: str) -> int:
    """How many `$$` block delimiters the line is (`$$ x $$` on one line is none)."""
    text = line.strip()
    if text.startswith("$$"):
        return 0 if len(text) > 4 and text.endswith("$$") else 1
    return 1 if text.endswith("$$") else 0


def _units(text: str) -> list[_Block]:
    lines = text.split("\n")
    units: list[_Block] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        if fence is not None or _math_delimiters(line):
            end = _block_end(lines, index, fence.group(1) if fence else None)
            units.append(_Block("\n".join(lines[index : end + 1]), 1))
            index = end + 1
            continue
        units.append(_Block(line, 1 if line.strip() else 0))
        index += 1
    return units


def _block_end(lines: list[str], start: int, fence: str | None) -> int:
    """The last line of the block opened at `start` (the end of the text if still open)."""
    for index in range(start + 1, len(lines)):
        line = lines[index]
        if fence is None:
            if _math_delimiters(line):
                return index
            continue
        if _closes(_FENCE.match(line), fence):
            return index
    return len(lines) - 1


def _closes(match: re.Match[str] | None, fence: str) -> bool:
    """Is this fence line the one that closes a code block opened with `fence`?"""
    if match is None:
        return False
    marker, info = match.group(1), match.group(2)
    return marker[0] == fence[0] and len(marker) >= len(fence) and not info.strip()
