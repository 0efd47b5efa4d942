"""What can go wrong talking to Hailuo, typed so callers can tell users something precise.

Every error carries `kind` (a short stable name for storage and metrics), the answer text received
before it happened, and the conversation if one was started, so nothing already shown is lost.
"""

from __future__ import annotations

from bot.hailuo.auth import Conversation


class HailuoError(Exception):
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


class AuthRejected(HailuoError):
    """The token is expired or revoked: only a new login helps."""

    kind = "auth"

    def __init__(self, message: str, *, status: int | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.status = status


class SignatureRejected(HailuoError):
    """The `yy` signature or the signed path was refused (400, code 2): usually a stale login."""

    kind = "signature"


class RateLimited(HailuoError):
    kind = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class UpstreamUnavailable(HailuoError):
    """5xx, refused connections, proxy failures and timeouts before any answer text."""

    kind = "unavailable"


class StreamInterrupted(HailuoError):
    """The stream ended or went silent before the answer was complete."""

    kind = "interrupted"


class UpstreamError(HailuoError):
    """Hailuo reported an error of its own (a non-zero `statusInfo.code`)."""

    kind = "upstream"

    def __init__(self, message: str, *, code: int | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.code = code
