"""What can go wrong talking to an upstream, typed so callers can tell users something precise.

Every error carries `kind` (a short stable name for storage and metrics), the upstream's own words
in `message`, the answer text received before it happened, and the conversation if one was
started, so nothing already shown is lost.
"""

from __future__ import annotations

from bot.upstream.conversation import Conversation


class UpstreamFailure(Exception):
    kind = "upstream"

    def __init__(
        self,
        message: str,
        *,
        partial_text: str = "",
        conversation: Conversation | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.partial_text = partial_text
        self.conversation = conversation


class AuthRejected(UpstreamFailure):
    """The login is expired or revoked: only a new login helps."""

    kind = "auth"

    def __init__(self, message: str, *, status: int | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.status = status


class SignatureRejected(UpstreamFailure):
    """The request signature was refused: a stale login, or the signing scheme changed."""

    kind = "signature"


class RateLimited(UpstreamFailure):
    """Too many requests, or out of quota / credits (the upstream's words in `message`)."""

    kind = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class UpstreamUnavailable(UpstreamFailure):
    """5xx, refused connections, proxy failures, challenge pages and timeouts before any text."""

    kind = "unavailable"


class StreamInterrupted(UpstreamFailure):
    """The stream ended or went silent before the answer was complete."""

    kind = "interrupted"


class ProtocolChanged(UpstreamFailure):
    """The upstream answered in a shape we do not know (an HTML page where JSON was expected):
    its web protocol has probably changed again."""

    kind = "protocol"


class UpstreamError(UpstreamFailure):
    """The upstream reported an error of its own (a non-zero status code, an error frame)."""

    kind = "upstream"

    def __init__(self, message: str, *, code: int | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.code = code
