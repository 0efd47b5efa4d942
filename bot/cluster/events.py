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

from bot.lifecycle import BackgroundLoop, stop_tasks
from bot.logs import log_failure

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]
RECONNECT_SECONDS = 1.0
SUBSCRIBE_TIMEOUT = 30.0


class EventBus:
    def __init__(self, redis: Redis, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self._handlers: dict[str, Handler] = {}
        self._listener = BackgroundLoop("event bus listener")
        self._handling: set[asyncio.Task[None]] = set()
        self._subscribed = asyncio.Event()

    def on(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    async def publish(self, kind: str, **payload: Any) -> None:
        await self._redis.publish(self._channel, json.dumps({"kind": kind, **payload}))

    async def start(self) -> None:
        self._listener.start(self._listen)
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                await self._subscribed.wait()
        except TimeoutError:
            await self._listener.stop()
            raise RedisError("could not subscribe to the event channel") from None

    async def stop(self) -> None:
        await self._listener.stop()
        await stop_tasks(list(self._handling), "handlers of events from other instances")

    async def _listen(self) -> None:
        while self._listener.running:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                self._subscribed.set()
                async for message in pubsub.listen():
                    self._dispatch(message.get("data"))
            except RedisError as exc:
                log.warning("Redis event channel lost (%s); reconnecting", exc)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            await self._listener.pause(RECONNECT_SECONDS)

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
