"""The upstream interface: events, errors, conversations and credentials shared by the adapters.

Nothing here knows a URL, a header or a signature; nothing here knows Telegram or the database.
"""

from bot.upstream.base import Upstream, display_name
from bot.upstream.conversation import DEFAULT_CHARACTER_ID, Conversation
from bot.upstream.credentials import Credentials, InvalidCredentials, fingerprint
from bot.upstream.errors import (
    AuthRejected,
    ProtocolChanged,
    RateLimited,
    SignatureRejected,
    StreamInterrupted,
    UpstreamError,
    UpstreamFailure,
    UpstreamUnavailable,
)
from bot.upstream.events import (
    ConversationStarted,
    Finished,
    ReasoningDelta,
    TextDelta,
    TitleGenerated,
    UpstreamEvent,
)
from bot.upstream.history import Turn
from bot.upstream.timeouts import UpstreamTimeouts

__all__ = [
    "DEFAULT_CHARACTER_ID",
    "AuthRejected",
    "Conversation",
    "ConversationStarted",
    "Credentials",
    "Finished",
    "InvalidCredentials",
    "ProtocolChanged",
    "RateLimited",
    "ReasoningDelta",
    "SignatureRejected",
    "StreamInterrupted",
    "TextDelta",
    "TitleGenerated",
    "Turn",
    "Upstream",
    "UpstreamError",
    "UpstreamEvent",
    "UpstreamFailure",
    "UpstreamTimeouts",
    "UpstreamUnavailable",
    "display_name",
    "fingerprint",
]
