"""Which instances are alive: one key per running process, kept alive by a heartbeat.

Everything an instance leaves in Redis (places in conversation queues, permits in flight) names
its *incarnation* (a random id per process), so another instance can tell when it has died and
clear up after it. The instance id (`INSTANCE_ID`) is claimed too, so two running processes
never share one: the database remembers answers by instance id, and each instance recovers only
its own after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.config import ConfigError
from bot.lifecycle import BackgroundLoop

log = logging.getLogger(__name__)

TTL_SECONDS = 10.0
BEAT_SECONDS = 3.0
# This process's claims may lapse TTL_SECONDS after its last good heartbeat; it gives up what it
# holds this much earlier, so another instance never takes over work still in progress here.
LEASE_MARGIN = 3.0

# Extend the claim only while it is still ours.
_RENEW_CLAIM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class InstanceIdInUse(ConfigError):
    """Another running process holds this INSTANCE_ID."""


class Presence:
    def __init__(self, redis: Redis, namespace: str, instance_id: str) -> None:
        self._redis = redis
        self._namespace = namespace
        self.instance_id = instance_id
        self.incarnation = uuid.uuid4().hex[:16]
        self._claim_key = f"{namespace}instance:{instance_id}"
        self._renew = redis.register_script(_RENEW_CLAIM)
        self._heartbeat = BackgroundLoop("presence heartbeat")
        self._last_beat = time.monotonic()

    def alive_key(self, incarnation: str) -> str:
        return f"{self._namespace}alive:{incarnation}"

    async def start(self, wait_for_claim: float = TTL_SECONDS * 2) -> None:
        """Claim the instance id (a crashed predecessor's claim expires within TTL_SECONDS)."""
        ttl = int(TTL_SECONDS * 1000)
        deadline = time.monotonic() + wait_for_claim
        while not await self._redis.set(self._claim_key, self.incarnation, nx=True, px=ttl):
            if time.monotonic() > deadline:
                raise InstanceIdInUse(
                    f"INSTANCE_ID {self.instance_id!r} is used by another running instance: "
                    "give every instance its own"
                )
            log.info("INSTANCE_ID %s is still held; waiting for it to expire", self.instance_id)
            await asyncio.sleep(1.0)
        await self._redis.set(self.alive_key(self.incarnation), self.instance_id, px=ttl)
        self._last_beat = time.monotonic()
        self._heartbeat.start(self._beat)

    @property
    def lease_held(self) -> bool:
        """Other instances still see this one alive, with a margin: past it, they may take
        over its places in the conversation queues."""
        return time.monotonic() - self._last_beat < TTL_SECONDS - LEASE_MARGIN

    async def instance_running(self, instance_id: str) -> bool:
        """Some process holds this instance id (it may be this one)."""
        return bool(await self._redis.exists(f"{self._namespace}instance:{instance_id}"))

    async def is_alive(self, incarnation: str) -> bool:
        if incarnation == self.incarnation:
            return True
        return bool(await self._redis.exists(self.alive_key(incarnation)))

    async def _beat(self) -> None:
        while await self._heartbeat.pause(BEAT_SECONDS):
            try:
                await self.beat()
            except RedisError as exc:
                log.warning("Redis heartbeat failed: %s", exc)

    async def beat(self) -> None:
        """Renew this process's keys; a claim lost in a long outage is taken back if free."""
        ttl = int(TTL_SECONDS * 1000)
        started = time.monotonic()
        await self._redis.set(self.alive_key(self.incarnation), self.instance_id, px=ttl)
        if not await self._renew(keys=[self._claim_key], args=[self.incarnation, ttl]):
            taken = await self._redis.set(self._claim_key, self.incarnation, nx=True, px=ttl)
            if not taken:
                log.error("INSTANCE_ID %s was taken by another process", self.instance_id)
        self._last_beat = started  # the keys live TTL_SECONDS from when they were set

    async def stop(self) -> None:
        await self._heartbeat.stop()
        with contextlib.suppress(RedisError):
            await self._redis.delete(self.alive_key(self.incarnation))
            await self._renew(keys=[self._claim_key], args=[self.incarnation, 1])
