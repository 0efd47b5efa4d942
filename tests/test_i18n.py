"""The message catalogue: complete in both languages, correct plurals, nothing written inline."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest

from bot.i18n import LANGUAGES, catalogue_keys, language_for, translator

ROOT = Path(__file__).resolve().parents[1]
PLURAL_KEYS = {"queued", "error_upstream_busy", "too_long", "forget_done"}
SAME_IN_BOTH = {"title"}  # "📝 {title}" needs no translation


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def sample_values(text: str) -> dict[str, object]:
    return dict.fromkeys(placeholders(text), 7)


def test_both_catalogues_have_the_same_keys() -> None:
    assert catalogue_keys("en") == catalogue_keys("ru")


@pytest.mark.parametrize("key", sorted(catalogue_keys("en") - PLURAL_KEYS))
def test_every_message_renders_in_both_languages(key: str) -> None:
    english, russian = translator("en"), translator("ru")
    assert russian.has(key)
    en_text, ru_text = english(key), russian(key)
    assert placeholders(en_text) == placeholders(ru_text)
    rendered = {
        language: translator(language)(key, **sample_values(en_text)) for language in LANGUAGES
    }
    if key not in SAME_IN_BOTH:
        assert rendered["ru"] != rendered["en"], f"{key!r} is not translated"
        assert re.search("[а-яё]", rendered["ru"], re.IGNORECASE), f"{key!r} has no Russian"


@pytest.mark.parametrize("key", sorted(PLURAL_KEYS))
def test_plurals_follow_each_language(key: str) -> None:
    russian, english = translator("ru"), translator("en")
    for n in (1, 2, 5, 11, 21, 22, 25, 101):
        assert str(n) in russian.plural(key, n, limit=10)
        assert str(n) in english.plural(key, n, limit=10)
    assert english.plural(key, 1, limit=10) != english.plural(key, 2, limit=10)


@pytest.mark.parametrize(
    ("n", "word"),
    [(1, "секунду"), (2, "секунды"), (4, "секунды"), (5, "секунд"), (11, "секунд"),
     (21, "секунду"), (22, "секунды"), (25, "секунд")],
)  # fmt: skip
def test_russian_plural_forms(n: int, word: str) -> None:
    assert translator("ru").plural("error_upstream_busy", n).endswith(f"{n} {word}.")


@pytest.mark.parametrize(
    ("code", "language"),
    [("ru", "ru"), ("uk", "ru"), ("be", "ru"), ("ru-RU", "ru"), ("en", "en"), ("de", "en"),
     (None, "en"), ("", "en")],
)  # fmt: skip
def test_telegram_language_codes(code: str | None, language: str) -> None:
    assert language_for(code) == language


def test_every_key_the_code_uses_exists() -> None:
    keys = catalogue_keys("en")
    used: set[str] = set()
    for path in (ROOT / "bot").rglob("*.py"):
        if path.name == "i18n.py":
            continue  # its docstring shows the call with a made-up key
        source = path.read_text()
        used |= set(re.findall(r"""\bt(?:\.plural)?\(\s*["']([a-z_]+)["']""", source))
        used |= set(re.findall(r"""\)\(\s*["']([a-z_]+)["']""", source))  # for_user(...)("key")
        used |= set(re.findall(r""":\s*["']((?:note|error)_[a-z_]+)["']""", source))  # NOTE_KEYS
    assert used, "the scan found no uses at all"
    assert used <= keys, f"missing from the catalogue: {sorted(used - keys)}"


# --- nothing user-facing written inline -------------------------------------------------------

SENDERS = {
    "reply", "answer", "send_message", "edit_message_text", "send_message_draft", "send_photo",
    "InlineKeyboardButton", "BotCommand",
}  # fmt: skip
TEXT_ARGUMENTS = {"text", "description", "caption"}


def inline_texts(source: str) -> list[str]:
    """Literal words passed where the user would read them."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = (
            node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        )
        if name not in SENDERS:
            continue
        values = list(node.args[1:] if name == "reply" else node.args)
        values += [kw.value for kw in node.keywords if kw.arg in TEXT_ARGUMENTS]
        for value in values:
            words = (
                isinstance(value, ast.Constant)
                and isinstance(value.value, str)
                and re.search("[A-Za-zА-Яа-я]", value.value)
            )
            if words or isinstance(value, ast.JoinedStr):
                found.append(f"line {node.lineno}: {ast.unparse(value)[:60]}")
    return found


def test_the_inline_text_check_catches_one() -> None:
    assert inline_texts('await bridge.reply(message, "Hello there")')
    assert inline_texts('await bot.send_message(chat_id=1, text=f"Hi {name}")')
    assert not inline_texts('await bridge.reply(message, t("hello"))')


def test_no_user_facing_text_is_written_inline() -> None:
    offenders = []
    for folder in ("bot/telegram", "bot/services"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            offenders += [
                f"{path.relative_to(ROOT)} {where}" for where in inline_texts(path.read_text())
            ]
    assert offenders == [], "user-facing text belongs in bot/locales/*.po:\n" + "\n".join(offenders)
