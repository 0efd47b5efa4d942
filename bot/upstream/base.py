"""The one interface the answering service talks to, whatever the upstream behind it.

An adapter (`bot.hailuo`, `bot.minimax_agent`) is the only place that knows its URLs, headers and
signatures; it knows nothing of Telegram or the database.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Protocol

from bot.upstream.conversation import Conversation
from bot.upstream.credentials import Credentials
from bot.upstream.events import UpstreamEvent
from bot.upstream.history import Turn

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

    @property
    def keeps_history(self) -> bool:
        """The upstream remembers its conversations (a web chat); False: every question must
        carry the conversation's `history` (an API)."""

    def stream(
        self,
        credentials: Credentials,
        text: str,
        conversation: Conversation | None = None,
        *,
        history: Sequence[Turn] = (),
        model: str | None = None,
    ) -> AsyncGenerator[UpstreamEvent, None]:
        """Ask `text`, continuing `conversation` when it was made here with this login.

        `history` (oldest first) is what an upstream that keeps no conversation is sent before
        `text`; one that keeps its own ignores it. `model` overrides the configured model.
        Yields ConversationStarted, TitleGenerated, ReasoningDelta and TextDelta events, then
        Finished; raises an UpstreamFailure otherwise. Closing the iterator closes the request."""

    async def models(self, credentials: Credentials) -> list[str]:
        """The models this upstream offers to this login ([] when it has no choice)."""

    async def probe(self, credentials: Credentials) -> Credentials:
        """Check the login with the cheapest authenticated call (raises AuthRejected and the
        like); return the credentials to keep using (renewed, or completed, where needed)."""

    async def title(self, credentials: Credentials, conversation: Conversation) -> str:
        """The conversation's title as the upstream has it now ("" if none)."""

    async def close(self) -> None: ...
