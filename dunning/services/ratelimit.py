"""The provider's rate limit (`DUNNING_SEND_RATE`, messages per second): one token bucket shared
by every run and every worker, in Redis when `REDIS_URL` is set, else in the database
(`SendRateBucket`, one row locked per take). A provider's 429 with `Retry-After` pauses the
bucket, so every sender waits instead of spending its attempts.

Without a rate the bucket is local to the process: it only holds the 429 pauses.

`take(n)` is called by the run's main thread before it hands messages to its sending threads;
it returns how many may go now (0..n) and, when 0, how long to wait."""

from __future__ import annotations

import datetime
import threading
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone

BURST_SECONDS = 0.1  # the bucket holds at most this many seconds of rate (at least one message)
REDIS_KEY = "dunning:send-rate"

_TAKE_LUA = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'tokens', 'ts', 'paused')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
local paused = tonumber(state[3]) or 0
if paused > now then
  return {0, tostring(paused - now)}
end
tokens = math.min(capacity, tokens + (now - ts) * rate)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', key, 3600)
if granted == 0 then
  return {0, tostring((1 - tokens) / rate)}
end
return {granted, '0'}
"""

_PAUSE_LUA = """
local t = redis.call('TIME')
local until_ = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
local paused = tonumber(redis.call('HGET', KEYS[1], 'paused')) or 0
if until_ > paused then
  redis.call('HSET', KEYS[1], 'paused', tostring(until_), 'tokens', '0')
  redis.call('EXPIRE', KEYS[1], 3600)
end
return 1
"""


class LocalLimiter:
    """No rate: everything may go, except during a 429 pause (this process only)."""

    def __init__(self) -> None:
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def take(self, n: int) -> tuple[int, float]:
        wait = self._paused_until - time.monotonic()
        return (0, wait) if wait > 0 else (n, 0.0)

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)


class RedisLimiter:
    def __init__(self, url: str, rate: float) -> None:
        import redis

        self.rate = rate
        self.capacity = max(1.0, rate * BURST_SECONDS)
        self._redis = redis.Redis.from_url(url)
        self._take = self._redis.register_script(_TAKE_LUA)
        self._pause = self._redis.register_script(_PAUSE_LUA)

    def take(self, n: int) -> tuple[int, float]:
        granted, wait = self._take(keys=[REDIS_KEY], args=[self.rate, self.capacity, n])
        return int(granted), float(wait)

    def pause(self, seconds: float) -> None:
        self._pause(keys=[REDIS_KEY], args=[seconds])


class DatabaseLimiter:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate * BURST_SECONDS)

    def _bucket(self):
        from ..models import SendRateBucket

        SendRateBucket.objects.get_or_create(pk=1, defaults={"tokens": self.capacity})
        return SendRateBucket.objects.select_for_update().get(pk=1)

    def take(self, n: int) -> tuple[int, float]:
        with transaction.atomic():
            bucket = self._bucket()
            now = timezone.now()
            if bucket.paused_until and bucket.paused_until > now:
                return 0, (bucket.paused_until - now).total_seconds()
            elapsed = (now - bucket.updated_at).total_seconds() if bucket.updated_at else self.capacity / self.rate
            tokens = min(self.capacity, bucket.tokens + max(0.0, elapsed) * self.rate)
            granted = min(n, int(tokens))
            bucket.tokens, bucket.updated_at = tokens - granted, now
            bucket.save(update_fields=["tokens", "updated_at"])
            return (granted, 0.0) if granted else (0, (1 - bucket.tokens) / self.rate)

    def pause(self, seconds: float) -> None:
        with transaction.atomic():
            bucket = self._bucket()
            until = timezone.now() + datetime.timedelta(seconds=seconds)
            if not bucket.paused_until or until > bucket.paused_until:
                bucket.paused_until, bucket.tokens = until, 0
                bucket.save(update_fields=["paused_until", "tokens"])


def rate_limiter() -> LocalLimiter | RedisLimiter | DatabaseLimiter:
    """The limiter the settings ask for."""
    rate = getattr(settings, "DUNNING_SEND_RATE", None)
    if not rate:
        return LocalLimiter()
    if getattr(settings, "REDIS_URL", ""):
        return RedisLimiter(settings.REDIS_URL, float(rate))
    return DatabaseLimiter(float(rate))
