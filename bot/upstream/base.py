"""The one interface the answering service talks to, whatever the upstream behind it.

An adapter (`bot.hailuo`, `bot.minimax_agent`) is the only place that knows its URLs, headers and
signatures; it knows nothing of Telegram or the database.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

from bot.upstream.conversation import Conversation
from bot.upstream.credentials import Credentials
from bot.upstream.events import UpstreamEvent

DISPLAY_NAMES = {
    "minimax-agent": "MiniMax Agent",
    "hailuo": "Hailuo",
    "minimax-api": "MiniMax API",
}


def display_name(upstream: str) -> str:
    """How users see an upstream's name."""
    return DISPLAY_NAMES.get(upstream, upstream)


class Upstream(Protocol):
    @property
    def name(self) -> str:
        """The `UPSTREAM` setting that selects this adapter."""

    @property
    def probes_login(self) -> bool:
        """`probe` really asks the upstream (a login refusal can then be confirmed)."""

    def stream(
        self, credentials: Credentials, text: str, conversation: Conversation | None
    ) -> AsyncGenerator[UpstreamEvent, None]:
        """Ask `text`, continuing `conversation` when it was made here with this login.

        Yields ConversationStarted, TitleGenerated, ReasoningDelta and TextDelta events, then
        Finished; raises an UpstreamFailure otherwise. Closing the iterator closes the request."""

    async def probe(self, credentials: Credentials) -> Credentials:
        """Check the login with the cheapest authenticated call (raises AuthRejected and the
        like); return the credentials to keep using (renewed, or completed, where needed)."""

    async def title(self, credentials: Credentials, conversation: Conversation) -> str:
        """The conversation's title as the upstream has it now ("" if none)."""

    async def close(self) -> None: ...
