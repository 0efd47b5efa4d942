"""Values as the columns take them: no NUL (PostgreSQL refuses it), never longer than the column."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

UPSTREAM_ID_LIMIT = 64  # conversations.upstream_chat_id


def clean(text: str, limit: int) -> str:
    """No NUL, at most `limit` characters."""
    return text.replace("\x00", "")[:limit]


def upstream_id(value: str) -> str:
    """An upstream conversation id, or "" when it cannot be stored whole (the next question then
    starts a new conversation instead of failing the answer's write)."""
    value = value.replace("\x00", "")
    if len(value) > UPSTREAM_ID_LIMIT:
        log.warning("an upstream conversation id of %d characters was not stored", len(value))
        return ""
    return value
