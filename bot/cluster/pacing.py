"""Telegram's limits kept in Redis for every instance together (the `SharedBudget` of the pacer).

The books are the pacer's own, moved to Redis and updated atomically by two scripts: a permit is
recorded as in flight when taken and stamped with its end time when given back; the global window
counts calls that ended in the last second plus those in flight, a group's window the last minute,
and a chat is free one interval after its last call ended. Time is Redis's clock, so instances
whose clocks differ still agree. A permit whose instance died stops counting after
`IN_FLIGHT_MS`. When the bot-wide budget is contended, the next permit goes to the instance
whose candidate has waited longest (waiting times are durations, so clocks need not agree), as a
single pacer would give it to its oldest waiter.
"""

from __future__ import annotations

import itertools
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.telegram.pacer import PacingLimits, SharedVerdict

log = logging.getLogger(__name__)

IN_FLIGHT_MS = 30_000

# KEYS: global window, chat free-at, group window, chat penalty, global last grant,
#       contenders (instance -> since when its candidate waits), when each contender last asked.
# ARGV: member, chat interval ms, is group, group limit, global limit, in-flight ms,
#       ms the candidate has waited, incarnation, ms after which a silent contender is dropped.
# Returns {0} granted, {1, ms} the chat must wait, {2, ms} everything must wait.
STALE_MS = 250  # a contender that has not asked for this long has nothing waiting

_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member, interval = ARGV[1], tonumber(ARGV[2])
local is_group, group_limit = ARGV[3] == '1', tonumber(ARGV[4])
local global_limit, flight = tonumber(ARGV[5]), tonumber(ARGV[6])
local me, since = ARGV[8], now - tonumber(ARGV[7])
-- This candidate cannot go yet for reasons of its own chat: it is no contender for now.
local function chat_wait(ms)
  redis.call('ZREM', KEYS[6], me)
  redis.call('ZREM', KEYS[7], me)
  return {1, ms}
end
-- A stamp in the future is a call still in flight: its end is unknown, so look again soon.
local function until_free(stamp, after)
  if stamp > now then return 100 end
  return stamp + after - now
end
local penalty = redis.call('PTTL', KEYS[4])
if penalty > 0 then return chat_wait(penalty) end
local free_at = tonumber(redis.call('GET', KEYS[2]) or '0')
if free_at > now + interval then return chat_wait(100) end
if free_at > now then return chat_wait(free_at - now) end
if is_group then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - 60000)
  local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
  local spacing = math.floor(60000 / group_limit)
  if #last > 0 and tonumber(last[2]) + spacing > now then
    return chat_wait(until_free(tonumber(last[2]), spacing))
  end
  if redis.call('ZCARD', KEYS[3]) >= group_limit then
    local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    return chat_wait(until_free(tonumber(first[2]), 60000))
  end
end
-- The bot-wide budget goes to the instance whose candidate has waited longest: it registers
-- here, and a younger candidate of another instance steps back for a moment.
redis.call('ZADD', KEYS[6], since, me)
redis.call('ZADD', KEYS[7], now, me)
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', now - tonumber(ARGV[9]))) do
  redis.call('ZREM', KEYS[6], gone)
  redis.call('ZREM', KEYS[7], gone)
end
redis.call('PEXPIRE', KEYS[6], 10000)
redis.call('PEXPIRE', KEYS[7], 10000)
local oldest = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')
if oldest[1] ~= me and tonumber(oldest[2]) + 20 < since then return {2, 15} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 1000)
local last_grant = tonumber(redis.call('GET', KEYS[5]) or '0')
local spacing = math.floor(1000 / global_limit)
if last_grant + spacing > now then return {2, last_grant + spacing - now} end
if redis.call('ZCARD', KEYS[1]) >= global_limit then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {2, math.max(1, until_free(tonumber(first[2]), 1000))}
end
redis.call('ZADD', KEYS[1], now + flight, member)
redis.call('PEXPIRE', KEYS[1], flight + 2000)
redis.call('SET', KEYS[2], now + flight + interval, 'PX', flight + interval + 1000)
if is_group then
  redis.call('ZADD', KEYS[3], now + flight, member)
  redis.call('PEXPIRE', KEYS[3], flight + 61000)
end
redis.call('SET', KEYS[5], now, 'PX', 2000)
redis.call('ZREM', KEYS[6], me)
redis.call('ZREM', KEYS[7], me)
return {0}
"""

# KEYS: global window, chat free-at, group window. ARGV: member, chat interval ms, is group.
_GIVE_BACK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
redis.call('SET', KEYS[2], now + interval, 'PX', interval + 1000)
if ARGV[3] == '1' then redis.call('ZADD', KEYS[3], 'XX', now, ARGV[1]) end
return 1
"""


class RedisPacingBudget:
    def __init__(
        self,
        redis: Redis,
        namespace: str,
        incarnation: str,
        limits: PacingLimits,
        stale_ms: int = STALE_MS,
    ) -> None:
        self._stale_ms = stale_ms
        self._namespace = namespace
        self._incarnation = incarnation
        self._limits = limits
        self._take = redis.register_script(_TAKE)
        self._give_back = redis.register_script(_GIVE_BACK)
        self._redis = redis
        self._seq = itertools.count(1)
        self._in_flight: dict[int, str] = {}  # chat -> member of the permit it holds

    def _keys(self, chat_id: int) -> list[str]:
        ns = self._namespace
        return [
            f"{ns}pace:global",
            f"{ns}pace:chat:{chat_id}",
            f"{ns}pace:group:{chat_id}",
            f"{ns}pace:penalty:{chat_id}",
            f"{ns}pace:last",
            f"{ns}pace:contenders",
            f"{ns}pace:contenders-seen",
        ]

    async def take(self, chat_id: int, waited: float) -> SharedVerdict:
        member = f"{self._incarnation}:{next(self._seq)}"
        limits = self._limits
        try:
            result = await self._take(
                keys=self._keys(chat_id),
                args=[
                    member,
                    int(limits.chat_interval * 1000),
                    int(chat_id < 0),
                    limits.group_per_minute,
                    limits.global_per_second,
                    IN_FLIGHT_MS,
                    int(waited * 1000),
                    self._incarnation,
                    self._stale_ms,
                ],
            )
        except RedisError as exc:
            # Redis is gone: the local limits still hold for this instance alone.
            log.warning("shared pacing unavailable (%s); pacing this instance alone", exc)
            return SharedVerdict(granted=True)
        code = int(result[0])
        if code == 0:
            self._in_flight[chat_id] = member
            return SharedVerdict(granted=True)
        wait = int(result[1]) / 1000
        if code == 1:
            return SharedVerdict(granted=False, chat_wait=wait)
        return SharedVerdict(granted=False, global_wait=wait)

    async def give_back(self, chat_id: int) -> None:
        member = self._in_flight.pop(chat_id, None)
        if member is None:
            return
        try:
            await self._give_back(
                keys=self._keys(chat_id)[:3],
                args=[member, int(self._limits.chat_interval * 1000), int(chat_id < 0)],
            )
        except RedisError as exc:
            log.warning("could not record the end of a Telegram call in Redis: %s", exc)

    async def penalize(self, chat_id: int, retry_after: float) -> None:
        try:
            await self._redis.set(
                f"{self._namespace}pace:penalty:{chat_id}", "1", px=max(1, int(retry_after * 1000))
            )
        except RedisError as exc:
            log.warning("could not share a Telegram flood wait in Redis: %s", exc)
