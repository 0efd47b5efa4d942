"""Rich messages without Telegram: when an answer becomes one, partial frames made valid, and
parts cut at block boundaries — checked against the Bot API stand-in's own reading of the
rules (tests/standins/telegram.py), which refuses what Telegram would."""

from __future__ import annotations

import pytest

from bot.telegram.rich import (
    HTML,
    MARKDOWN,
    RICH_LIMIT,
    RichSplitter,
    closed,
    completed,
    thinking_frame,
    wanted,
)
from tests.standins.telegram import ApiError, _check_rich_html, _check_rich_markdown

ANSWER = """## Results

The **fast path** wins; see the table:

| size | plain | rich |
| ---: | :---: | --- |
| 1 kB | 1 msg | 1 msg |
| 20 kB | 5 msgs | 1 msg |

Energy is $E = mc^2$, and the sum:

$$
\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}
$$

```python
def total(n: int) -> int:
    return n * (n + 1) // 2  # **not bold** here
```

- one ~~struck~~ item
    - nested `code` item
- ==marked== and ||spoiler||

Done.
"""


@pytest.mark.parametrize(
    ("text", "mode", "expected"),
    [
        ("Just a short answer.", "auto", False),
        ("| a | b |\n| --- | --- |\n| 1 | 2 |", "auto", True),
        ("The formula $$x^2$$ here", "auto", True),
        ("Inline $\\frac{1}{2}$ math", "auto", True),
        ("It costs $5 and $6.", "auto", False),
        ("# Title\n\ntext", "auto", True),
        ("- a\n    - b\n        - c", "auto", True),
        ("word " * 700, "auto", True),
        ("Just a short answer.", "on", True),
        ("| a | b |\n| --- | --- |", "off", False),
        ("|" + " x |" * 25 + "\n|" + " --- |" * 25, "on", False),
        ("> " * 17 + "deep quote", "on", False),
        (" " * 40 + "- deep item", "on", False),
        (f"```python\n{' ' * 40}deeply_indented()\n```\n\n| a | b |\n| --- | --- |", "auto", True),
    ],
)
def test_when_an_answer_is_sent_as_a_rich_message(text: str, mode: str, expected: bool) -> None:
    assert wanted(text, mode) is expected


def test_every_partial_frame_is_valid_rich_markdown() -> None:
    """A stream can stop anywhere: every prefix of the answer, closed, is accepted."""
    for end in range(1, len(ANSWER) + 1):
        frame = closed(ANSWER[:end])
        try:
            _check_rich_markdown(frame)
        except ApiError as exc:  # pragma: no cover - the message says which prefix
            pytest.fail(f"prefix of {end} characters refused ({exc.description}): {frame!r}")
        assert frame.startswith(ANSWER[:end].rsplit("\n", 1)[0])


def test_the_whole_answer_goes_unchanged() -> None:
    assert closed(ANSWER) == ANSWER


def test_a_half_written_table_row_waits_until_it_is_whole() -> None:
    partial = "| a | b |\n| --- | --- |\n| 1 | 2"
    assert closed(partial) == "| a | b |\n| --- | --- |"
    assert closed(partial + " |") == partial + " |"


def test_an_open_fence_and_an_open_formula_are_closed() -> None:
    assert closed("```python\nx = 1").endswith("\n```")
    assert closed("$$\n\\sum x").endswith("\n$$")
    assert closed("a **bold") == "a **bold**"
    assert closed("a ~~gone and **bold") == "a ~~gone and **bold**~~"


def test_parts_are_cut_at_block_boundaries_and_never_change() -> None:
    """A 100 000-character answer of tables and code: each part within the limits, valid,
    sealed parts identical however much more text came, and no line cut in two."""
    rows = "\n".join(f"| {n} | value {n} | {'x' * 40} |" for n in range(900))
    table = "| n | value | filler |\n| --- | --- | --- |\n" + rows
    code = "```\n" + "\n".join(f"line {n} " + "y" * 60 for n in range(600)) + "\n```"
    answer = "\n\n".join([table, code, table, "The end."])
    splitter = RichSplitter()
    seen: list[str] = []
    for end in range(0, len(answer) + 1, 997):
        parts = splitter.parts(answer[: end or 1])
        texts = [part.text for part in parts]
        assert texts[: len(seen)] == seen[: len(texts)], "a sealed part changed"
        seen = texts[:-1] if len(texts) > len(seen) else seen
    parts = splitter.parts(answer)
    assert len(parts) >= 4
    lines = set(answer.split("\n"))
    for part in parts:
        assert part.rich == MARKDOWN
        assert len(part.text) <= RICH_LIMIT
        _check_rich_markdown(part.text)  # 500 blocks at most, among the rest
        for line in part.text.split("\n"):
            assert line in lines or line.startswith("```"), f"a line was cut: {line[:40]!r}"


def test_a_thinking_block_is_for_drafts_only() -> None:
    frame = thinking_frame("First I check.\nThen <compare> & decide", "💭 Thinking…")
    assert frame.rich == HTML
    assert frame.text == "<tg-thinking>Then &lt;compare&gt; &amp; decide</tg-thinking>"
    _check_rich_html(frame.text, draft=True)
    with pytest.raises(ApiError):
        _check_rich_html(frame.text, draft=False)


def test_a_thinking_block_is_never_empty() -> None:
    assert thinking_frame("", "💭 Thinking…").text == "<tg-thinking>💭 Thinking…</tg-thinking>"


@pytest.mark.parametrize(
    "text",
    [
        "The bound:\n\n|x| < 3",
        "Check if a == b then stop.",
        "| 1 || 3 |",
        "```bash\necho $$\n```",
        "~~~\nx = 2**10\n~~~",
        "2**10 is 1024.",
    ],
)
def test_whole_text_is_never_changed(text: str) -> None:
    """Sealed parts and finals keep every character; only an open block gets its closer."""
    assert completed(text) == text
    assert closed(text).startswith(text)
    assert "$$" not in closed("```bash\necho $$\n```")[len("```bash\necho $$\n```") :]


def test_open_blocks_are_closed_with_the_right_marker() -> None:
    assert completed("~~~python\nx = 1") == "~~~python\nx = 1\n~~~"
    assert completed("$$\n\\sum x") == "$$\n\\sum x\n$$"


def test_a_formula_longer_than_a_part_is_reopened_in_the_next() -> None:
    formula = "$$\n" + "\n".join(f"x_{n} + y_{n} \\\\" for n in range(4000)) + "\n$$"
    answer = "Before.\n\n" + formula + "\n\nAfter the formula."
    parts = RichSplitter().parts(answer, final=True)
    assert len(parts) >= 2
    for part in parts:
        _check_rich_markdown(part.text)
    assert parts[1].text.startswith("$$\n")
    assert parts[-1].text.endswith("After the formula.")


def test_a_table_cut_between_rows_keeps_its_header_in_the_next_part() -> None:
    rows = "\n".join(f"| {n} | {'z' * 80} |" for n in range(600))
    answer = "| n | text |\n| --- | --- |\n" + rows
    parts = RichSplitter().parts(answer, final=True)
    assert len(parts) >= 2
    for part in parts:
        assert part.text.startswith("| n | text |\n| --- | --- |\n")
        _check_rich_markdown(part.text)
    shown = [line for part in parts for line in part.text.split("\n")[2:]]
    assert shown == rows.split("\n"), "every row once, in order"
