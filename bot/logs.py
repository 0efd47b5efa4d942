"""Logging set-up, with a last line of defence that blanks out known secrets."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import threading
from typing import Any

_secrets: set[str] = set()
_lock = threading.Lock()
MIN_SECRET_LENGTH = 6


_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")


def scrub_credentials(text: str) -> str:
    """URLs lose their `user:password@` part (a proxy's error may print its URL)."""
    return _URL_CREDENTIALS.sub(r"\1***@", text)


def without_credentials(url: str) -> str:
    """The URL without `user:password@`, for where a secret must not go at all."""
    return _URL_CREDENTIALS.sub(r"\1", url)


def register_secret(value: str | None) -> None:
    """Any log line that would contain `value` shows `***` instead."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """`text` with every registered secret blanked out (for messages and stored errors too)."""
    for secret in tuple(_secrets):
        if secret in text:
            text = text.replace(secret, "***")
    return text


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in tuple(_secrets):
            if secret in redacted:
                redacted = redacted.replace(secret, "***")
        if redacted != message or record.exc_info:
            if record.exc_info:
                formatted = logging.Formatter().formatException(record.exc_info)
                for secret in tuple(_secrets):
                    formatted = formatted.replace(secret, "***")
                redacted = f"{redacted}\n{formatted}"
                record.exc_info = None
                record.exc_text = None
            record.msg, record.args = redacted, None
        return True


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party chatter that would otherwise drown the bot's own lines.
    for noisy in ("aiosqlite", "asyncio", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def log_failure(task: asyncio.Task[Any], what: str, logger: logging.Logger) -> None:
    """For done-callbacks of background tasks: an exception is logged, not lost."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.error("%s failed", what, exc_info=exc)
