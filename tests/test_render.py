"""Markdown → entities, and long answers cut into parts that never change once sent."""

from __future__ import annotations

import pytest

from bot.telegram.render import MESSAGE_LIMIT, Frame, PartSplitter, flatten_nesting, render
from tests.standins.telegram import ApiError, _check_entities, utf16_len

DOC = (
    "# Title\n\nSome **bold**, _italic_, `code`, a [link](https://example.com) and 🙂 emoji.\n\n"
    "```python\ndef f(x):\n    return x * 2  # ещё\n```\n\n- one\n- two\n\n> quoted\n"
)


def assert_valid(frame: Frame) -> None:
    assert utf16_len(frame.text) <= MESSAGE_LIMIT
    try:
        _check_entities(frame.text, [e.model_dump(exclude_none=True) for e in frame.entities])
    except ApiError as exc:  # pragma: no cover - the assertion message is the point
        pytest.fail(f"Telegram would refuse {frame.text!r}: {exc.description}")


def test_markdown_becomes_entities_not_markup() -> None:
    frame = render(DOC)
    assert "**" not in frame.text
    assert "```" not in frame.text
    kinds = {entity.type for entity in frame.entities}
    assert {"bold", "italic", "code", "text_link", "pre", "blockquote"} <= kinds
    assert_valid(frame)


def test_every_prefix_of_a_streamed_answer_is_valid() -> None:
    for end in range(len(DOC) + 1):
        assert_valid(render(DOC[:end]))


def test_open_code_fence_renders_as_code_while_streaming() -> None:
    frame = render("Look:\n```python\nprint('hi')")
    assert any(entity.type == "pre" for entity in frame.entities)


def test_note_is_added_in_italics() -> None:
    frame = render("Answer").with_note("⏹ Stopped.")
    assert frame.text == "Answer\n\n⏹ Stopped."
    assert frame.entities[-1].type == "italic"
    assert_valid(frame)


def test_parts_fit_and_sealed_parts_never_change() -> None:
    code = "```js\n" + "".join(f"console.log({n}); // ✓\n" for n in range(700)) + "```\n"
    answer = "Intro.\n\n" + "A paragraph with **bold** 🙂 text. " * 80 + "\n\n" + code + "\nEnd."
    splitter = PartSplitter()
    seen: list[Frame] = []
    for end in range(0, len(answer) + 1, 53):
        parts = splitter.parts(answer[:end])
        assert parts[: len(seen) - 1] == seen[: len(seen) - 1] if seen else True
        for sealed_before, now in zip(seen[:-1], parts, strict=False):
            assert sealed_before == now, "a sealed part changed"
        seen = parts
    parts = splitter.parts(answer)
    assert len(parts) >= 4
    for part in parts:
        assert_valid(part)
    everything = "\n".join(part.text for part in parts)
    for n in range(700):
        assert everything.count(f"console.log({n});") == 1
    code_parts = [p for p in parts if any(e.type == "pre" for e in p.entities)]
    assert all(e.language == "js" for p in code_parts for e in p.entities if e.type == "pre"), (
        "a code block cut in two is reopened with its language"
    )


def test_text_without_newlines_is_cut_between_words() -> None:
    words = "word " * 3000
    parts = PartSplitter().parts(words)
    assert len(parts) >= 3
    assert sum(len(part.text.split()) for part in parts) == 3000


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://example.org/a?b=c#d", True),
        ("http://127.0.0.1:8080/x", True),
        ("https://пример.рф/", True),
        ("tg://user?id=42", True),
        ("www.example.org/page", True),
        ("#anchor", False),
        ("/docs/start", False),
        ("../up", False),
        ("javascript:alert(1)", False),
        ("mailto:someone@example.org", False),
        ("https://", False),
        ("ftp://example.org/file", False),
        ("javascript:void(0)", False),
    ],
)
def test_only_links_telegram_takes_stay_links(url: str, kept: bool) -> None:
    frame = render(f"see [the words]({url}) here")
    assert frame.text == "see the words here"
    assert any(entity.type == "text_link" for entity in frame.entities) is kept
    assert_valid(frame)


@pytest.mark.parametrize("bomb", ["- " * 5_000 + "words", ">" * 5_000 + " words"])
def test_deep_nesting_is_flattened_and_code_is_left_alone(bomb: str) -> None:
    code = "```\n" + "- " * 20 + "\n```"
    frame = render(bomb + "\n\n" + code)
    assert "words" in frame.text
    assert "- " * 20 in frame.text, "a code block keeps its text as written"
    assert len(frame.text) < 500
    assert_valid(frame)


def test_ordinary_nesting_and_indented_code_are_untouched() -> None:
    """Lists nested by indentation, and code indented inside a list item, render as written."""
    markdown = (
        "1. Step one\n    ```yaml\n    items:\n"
        + "".join(f"{'  ' * (depth + 3)}- name: {depth}\n" for depth in range(12))
        + "    ```\n2. Step two\n"
        + "".join(f"{'  ' * depth}- level {depth}\n" for depth in range(12))
    )
    assert flatten_nesting(markdown) == markdown


def test_a_long_answer_is_split_without_rendering_it_whole() -> None:
    """A 300 kB answer without a single newline, heavy with links (which render much shorter
    than their source): every part fits, no word is lost or repeated."""
    words = " ".join(f"[w{n}](https://example.org/{n})" for n in range(12_000))
    parts = PartSplitter().parts(words)
    for part in parts:
        assert_valid(part)
    seen = " ".join(part.text for part in parts).split()
    assert seen == [f"w{n}" for n in range(12_000)]
