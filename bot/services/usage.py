"""One limit for everything a person makes the bot do — questions, commands, button presses —
per user and per chat, over a moving minute. With `REDIS_URL` the counts are shared by every
instance (the `limits` library's Redis storage), so two instances do not double the allowance.

A refusal is worth telling once per window, not once per message: `Verdict.tell` is true for the
first refusal of a key in a minute only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import limits
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    tell: bool = False  # refused, and this is the first refusal of the window: say so


class UsageLimits:
    def __init__(
        self,
        *,
        per_user: int,
        per_chat: int,
        redis_url: str | None = None,
        namespace: str = "hailuo-bridge:",
    ) -> None:
        storage: Storage = MemoryStorage()
        if redis_url:
            shared = storage_from_string(
                "async+" + redis_url,
                implementation="redispy",
                key_prefix=f"{namespace}usage",
                socket_timeout=5,
            )
            assert isinstance(shared, Storage)  # the async+ scheme gives the asyncio storage
            storage = shared
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self._per_user = limits.RateLimitItemPerMinute(per_user)
        self._per_chat = limits.RateLimitItemPerMinute(per_chat)
        self._notice = limits.RateLimitItemPerMinute(1)

    async def take(self, user_key: str, chat_key: str | None) -> Verdict:
        """Count one request of `user_key` in `chat_key` (None: a private chat, where the user's
        limit is the chat's), or refuse it. If the counts cannot be reached (Redis down), the
        request is allowed: a limit must not take the bot down with it."""
        try:
            return await self._take(user_key, chat_key)
        except Exception as exc:  # the storage's own errors are not one type
            log.warning("usage limits unavailable (%s); allowing", type(exc).__name__)
            return Verdict(allowed=True)

    async def _take(self, user_key: str, chat_key: str | None) -> Verdict:
        checks = [(self._per_user, f"user:{user_key}")]
        if chat_key is not None:
            checks.append((self._per_chat, f"chat:{chat_key}"))
        for item, key in checks:
            if not await self._limiter.test(item, key):
                tell = await self._limiter.hit(self._notice, f"told:{key}")
                return Verdict(allowed=False, tell=tell)
        for item, key in checks:
            await self._limiter.hit(item, key)
        return Verdict(allowed=True)
