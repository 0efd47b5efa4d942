"""A conversation held by an upstream, as the bot remembers it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

DEFAULT_CHARACTER_ID = "1"


class Conversation(BaseModel):
    """A server-side conversation (a Hailuo chat, a MiniMax Agent session): valid only on the
    upstream and with the login that made it."""

    model_config = ConfigDict(frozen=True)

    chat_id: str
    token_fingerprint: str
    character_id: str = DEFAULT_CHARACTER_ID  # Hailuo's character; unused elsewhere
    upstream: str = "hailuo"

    def belongs_to(self, fingerprint: str, upstream: str) -> bool:
        return bool(self.chat_id) and (self.token_fingerprint, self.upstream) == (
            fingerprint,
            upstream,
        )
