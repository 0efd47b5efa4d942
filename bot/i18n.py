"""Everything the bot says comes from one catalogue per language (gettext .po files).

Why gettext (Babel + the standard library) rather than Fluent: the .po format is what translators
and their tools know, plural rules are part of the file (Russian needs three forms), and the
catalogues compile in memory at start-up — no build step, no binary files in the repository.
Keys are stable ids ("help", "queued"), so English is a catalogue like any other.
"""

from __future__ import annotations

import gettext
import io
import logging
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

log = logging.getLogger(__name__)

LOCALES_DIR = Path(__file__).with_name("locales")
DEFAULT_LANGUAGE = "en"
LANGUAGES = ("en", "ru")
# Telegram's language_code values that get Russian: Russian, Ukrainian and Belarusian speakers.
RUSSIAN_READERS = frozenset({"ru", "uk", "be"})


def language_for(language_code: str | None) -> str:
    """The bot's language for a Telegram `language_code` such as "ru" or "en-GB"."""
    base = (language_code or "").split("-")[0].lower()
    return "ru" if base in RUSSIAN_READERS else DEFAULT_LANGUAGE


@cache
def _catalogue(language: str) -> gettext.GNUTranslations:
    with (LOCALES_DIR / f"{language}.po").open("rb") as source:
        catalog = read_po(source, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


_upstream_name = "Hailuo"


def set_upstream_name(name: str) -> None:
    """What `{upstream}` says in every text: the chat the bot is connected to (set at start)."""
    global _upstream_name
    _upstream_name = name


class Translator:
    """`t("key", name=value)` and `t.plural("key", n)` in one language, English as the fallback.

    `{upstream}` is the configured upstream's name (MiniMax Agent, Hailuo) unless given."""

    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE
        self._catalogue = _catalogue(self.language)

    def __call__(self, key: str, /, **values: object) -> str:
        text = self._catalogue.gettext(key)
        if text == key:
            text = self._missing(key)
        if "upstream" not in values:
            text = text.replace("{upstream}", _upstream_name)
        return text.format(**values) if values else text

    def plural(self, key: str, n: int, /, **values: object) -> str:
        text = self._catalogue.ngettext(key, f"{key}.plural", n)
        if text in (key, f"{key}.plural"):
            text = self._missing(key)
        if "upstream" not in values:
            text = text.replace("{upstream}", _upstream_name)
        return text.format(n=n, **values)

    def has(self, key: str) -> bool:
        return self._catalogue.gettext(key) != key

    def _missing(self, key: str) -> str:
        log.error("no %r text for %r", self.language, key)
        if self.language != DEFAULT_LANGUAGE:
            return translator(DEFAULT_LANGUAGE)(key)
        return key


@cache
def translator(language: str) -> Translator:
    return Translator(language)


def catalogue_keys(language: str) -> set[str]:
    """Every key of a catalogue (plural keys once), for tests and tools."""
    with (LOCALES_DIR / f"{language}.po").open("rb") as source:
        catalog = read_po(source, locale=language)
    return {
        message.id if isinstance(message.id, str) else message.id[0]
        for message in catalog
        if message.id
    }
