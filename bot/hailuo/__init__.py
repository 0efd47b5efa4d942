"""The Hailuo web chat adapter (the seed's protocol). It knows nothing of Telegram.

The events, errors and conversation type are the upstream interface's (`bot.upstream`); they are
re-exported here under the names the Hailuo code and its tests have always used.
"""

from bot.hailuo.auth import AuthState, InvalidAuthState
from bot.hailuo.client import HailuoClient, HailuoTimeouts
from bot.hailuo.signing import body_to_yy, yy
from bot.upstream import (
    AuthRejected,
    Conversation,
    ConversationStarted,
    Finished,
    RateLimited,
    ReasoningDelta,
    SignatureRejected,
    StreamInterrupted,
    TextDelta,
    TitleGenerated,
    UpstreamError,
    UpstreamUnavailable,
    fingerprint,
)
from bot.upstream import UpstreamEvent as HailuoEvent
from bot.upstream import UpstreamFailure as HailuoError

__all__ = [
    "AuthRejected",
    "AuthState",
    "Conversation",
    "ConversationStarted",
    "Finished",
    "HailuoClient",
    "HailuoError",
    "HailuoEvent",
    "HailuoTimeouts",
    "InvalidAuthState",
    "RateLimited",
    "ReasoningDelta",
    "SignatureRejected",
    "StreamInterrupted",
    "TextDelta",
    "TitleGenerated",
    "UpstreamError",
    "UpstreamUnavailable",
    "body_to_yy",
    "fingerprint",
    "yy",
]
