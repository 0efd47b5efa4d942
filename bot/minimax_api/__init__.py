"""The official MiniMax API (OpenAI-compatible): `UPSTREAM=minimax-api`.

An API key instead of a browser login, and no server-side conversations: the bot sends each
conversation's history with every question. The client lives in `bot.minimax_api.client`, not
re-exported here, so that reading a stored key does not import `openai`.
"""

from bot.minimax_api.credentials import ApiKey
from bot.minimax_api.thinking import ThinkSplitter

__all__ = ["ApiKey", "ThinkSplitter"]
