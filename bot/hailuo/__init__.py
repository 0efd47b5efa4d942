"""A client for the Hailuo AI web chat. It knows nothing of Telegram."""

from bot.hailuo.auth import AuthState, Conversation, InvalidAuthState, fingerprint
from bot.hailuo.client import HailuoClient, HailuoTimeouts
from bot.hailuo.errors import (
    AuthRejected,
    HailuoError,
    RateLimited,
    SignatureRejected,
    StreamInterrupted,
    UpstreamError,
    UpstreamUnavailable,
)
from bot.hailuo.events import ConversationStarted, Finished, HailuoEvent, TextDelta, TitleGenerated
from bot.hailuo.signing import body_to_yy, yy

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
