"""Several instances working as one bot, through Redis (set `REDIS_URL`).

Nothing here is needed by a single process, and nothing here knows Telegram or Hailuo: it offers
the shared conversation queue, the shared pacing budget, the instance heartbeat, a channel for
stop and login requests, and the lock that lets one browser login run at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

from bot.cluster.events import EventBus
from bot.cluster.pacing import RedisPacingBudget
from bot.cluster.presence import InstanceIdInUse, Presence
from bot.cluster.queue import RedisConversationQueue
from bot.config import ConfigError
from bot.lifecycle import BackgroundLoop, finish_within
from bot.telegram.pacer import PacingLimits

__all__ = ["Cluster", "ClusterError", "InstanceIdInUse"]

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 5.0
LEASE_CHECK_SECONDS = 0.5
LEASE_CHECK_BEAT = 2.0
STOP_EVENT = "stop"
LOGIN_EVENT = "login"


class ClusterError(ConfigError):
    """Redis cannot be used; the message never contains the URL (it may hold a password)."""


class Cluster:
    def __init__(
        self,
        redis: Redis,
        namespace: str,
        instance_id: str,
        limits: PacingLimits,
        login_timeout: float,
    ) -> None:
        self.redis = redis
        self.namespace = namespace
        self.presence = Presence(redis, namespace, instance_id)
        self.bus = EventBus(redis, f"{namespace}events")
        self.queue = RedisConversationQueue(redis, namespace, self.presence, self.bus)
        self.pacing = RedisPacingBudget(redis, namespace, self.presence.incarnation, limits)
        self._lease_watch = BackgroundLoop("lease watch")
        self._on_lease_lost: list[Callable[[], None]] = []
        self._login_lock: Lock = redis.lock(
            f"{namespace}login", timeout=login_timeout + 120, blocking=False
        )

    @classmethod
    async def connect(
        cls,
        url: str,
        namespace: str,
        instance_id: str,
        limits: PacingLimits,
        login_timeout: float,
    ) -> Cluster:
        # Every command has a deadline (a frozen connection must not hold a turn or a shutdown
        # forever); the event channel's blocking read is exempt (redis-py >= 8.1).
        redis = Redis.from_url(
            url,
            socket_connect_timeout=10,
            socket_timeout=COMMAND_TIMEOUT,
            health_check_interval=30,
        )
        try:
            await redis.ping()
        except (RedisError, OSError) as exc:
            await redis.aclose()
            raise ClusterError(
                f"cannot reach Redis at REDIS_URL ({type(exc).__name__}); is it running?"
            ) from None
        return cls(redis, namespace, instance_id, limits, login_timeout)

    async def start(self) -> None:
        try:
            await self.presence.start()
            await self.bus.start()
        except RedisError as exc:
            raise ClusterError(f"Redis is unavailable ({type(exc).__name__})") from None
        self._lease_watch.start(self._watch_lease)

    def on_lease_lost(self, give_up: Callable[[], None]) -> None:
        """`give_up` runs when this instance can no longer be sure the others see it alive:
        what it holds (answers being streamed) must stop before another instance takes over."""
        self._on_lease_lost.append(give_up)

    async def _watch_lease(self) -> None:
        held = True
        while await self._lease_watch.pause(LEASE_CHECK_SECONDS):
            now_held = self.presence.lease_held
            if held and not now_held:
                # A stalled event loop looks like a lapse: one quick beat tells them apart.
                with contextlib.suppress(RedisError, TimeoutError):
                    async with asyncio.timeout(LEASE_CHECK_BEAT):
                        await self.presence.beat()
                now_held = self.presence.lease_held
            if held and not now_held:
                log.warning("lost contact with Redis: giving up the answers in progress")
                for give_up in self._on_lease_lost:
                    give_up()
            held = now_held

    async def close(self) -> None:
        """Give up what this process holds in Redis; bounded, however Redis behaves."""
        await self._lease_watch.stop()
        await self.queue.close()
        await self.bus.stop()
        await finish_within(self.presence.stop(), "leaving the Redis presence", deadline=20.0)
        await finish_within(self.redis.aclose(), "closing the Redis connections")

    async def instance_running(self, instance_id: str) -> bool:
        return await self.presence.instance_running(instance_id)

    # --- stop requests (the answering service's StopRelay) -----------------------------------

    async def request_stop(self, answer_id: int) -> None:
        await self.bus.publish(STOP_EVENT, answer=answer_id)

    def on_stop(self, stop_here: Callable[[int], bool]) -> None:
        async def handle(message: dict[str, Any]) -> None:
            stop_here(int(message.get("answer", 0)))

        self.bus.on(STOP_EVENT, handle)

    # --- the browser login (LoginRunner's LoginCoordination) ----------------------------------

    async def claim_login(self) -> bool:
        try:
            return bool(await self._login_lock.acquire())
        except RedisError as exc:
            raise ClusterError(f"Redis is unavailable ({type(exc).__name__})") from None

    async def release_login(self) -> None:
        with contextlib.suppress(LockError, RedisError):
            await self._login_lock.release()

    async def login_running_elsewhere(self) -> bool:
        return bool(await self.redis.exists(self._login_lock.name))

    async def ask_login(self, action: str, chat_id: int) -> None:
        await self.bus.publish(LOGIN_EVENT, action=action, chat=chat_id)

    def on_login_request(self, handler: Callable[[str, int], Awaitable[None]]) -> None:
        async def handle(message: dict[str, Any]) -> None:
            await handler(str(message.get("action")), int(message.get("chat", 0)))

        self.bus.on(LOGIN_EVENT, handle)
