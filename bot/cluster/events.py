"""Messages between instances over Redis pub/sub: one channel, small JSON messages by kind.

Used for what must reach another process quickly — a conversation's turn is free, stop this
answer, cancel the login — never for anything that must survive a lost message: those waits
also poll.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.logs import log_failure

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]
RECONNECT_SECONDS = 1.0


class EventBus:
    def __init__(self, redis: Redis, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self._handlers: dict[str, Handler] = {}
        self._listener: asyncio.Task[None] | None = None
        self._handling: set[asyncio.Task[None]] = set()
        self._subscribed = asyncio.Event()

    def on(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    async def publish(self, kind: str, **payload: Any) -> None:
        await self._redis.publish(self._channel, json.dumps({"kind": kind, **payload}))

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="event-bus")
        await self._subscribed.wait()

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        for task in list(self._handling):
            task.cancel()
        await asyncio.gather(*self._handling, return_exceptions=True)

    async def _listen(self) -> None:
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                self._subscribed.set()
                async for message in pubsub.listen():
                    self._dispatch(message.get("data"))
            except RedisError as exc:
                log.warning("Redis event channel lost (%s); reconnecting", exc)
                await asyncio.sleep(RECONNECT_SECONDS)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _dispatch(self, data: object) -> None:
        try:
            message = json.loads(data) if isinstance(data, bytes | str) else None
        except ValueError:
            message = None
        if not isinstance(message, dict):
            log.warning("ignored a malformed event on the Redis channel")
            return
        handler = self._handlers.get(str(message.get("kind")))
        if handler is None:
            return
        task: asyncio.Task[None] = asyncio.create_task(handler(message))
        self._handling.add(task)
        task.add_done_callback(self._handled)

    def _handled(self, task: asyncio.Task[None]) -> None:
        self._handling.discard(task)
        log_failure(task, "handling an event from another instance", log)
