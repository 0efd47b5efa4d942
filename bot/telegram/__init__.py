"""The Telegram front end (aiogram). It knows nothing of SSE or signatures."""
