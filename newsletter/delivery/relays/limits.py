"""Per-relay rate limits shared by every worker: Redis in production, this process otherwise.

Three limits per relay (see :mod:`newsletter.delivery.relays.routing` for the options):

- ``per_second``: a token bucket holding at most one second's worth (at least 1 token),
  refilled continuously, so sending is smooth rather than in bursts at each second;
- ``per_hour``: a quota per UTC clock hour;
- ``per_day`` (or the warm-up cap of the day): a quota per UTC calendar day.

Hour and day are counted in calendar windows, not as refilling buckets, because that is how
people, relays' dashboards and warm-up schedules count ("day 3: 4,000 messages"): a bucket
that starts full and refills would let nearly twice the daily cap through in the first 24 h.

``acquire(policy, wanted)`` grants as many as every limit allows now (up to ``wanted``), so
the engine asks for a chunk at a time: one Redis round trip per chunk.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from newsletter.delivery.relays.routing import RelayPolicy

log = logging.getLogger(__name__)

HOUR, DAY = 3600, 86400
#: how long a counter outlives its window (clock differences between workers)
KEY_SLACK_SECONDS = 120


@dataclass(frozen=True)
class _Ask:
    """One request, with the windows already worked out from one reading of the clock."""

    key: str  # the relay's key prefix
    now: float
    wanted: int
    rate: float  # per_second; 0: none
    burst: float
    hour_cap: int  # -1: none
    hour: int  # index of the UTC hour
    day_cap: int  # -1: none
    day: str  # the UTC date, YYYY-MM-DD

    @property
    def hour_left(self) -> float:
        """Seconds until the current hour window ends."""
        return HOUR - self.now % HOUR

    @property
    def day_left(self) -> float:
        return DAY - self.now % DAY


class Backend(Protocol):
    def take(self, ask: _Ask) -> tuple[int, float]:
        """Grant up to ``ask.wanted`` under all three limits at once (atomically)."""
        ...


class RateLimiter:
    """Grants messages to relays under their limits; thread-safe, one per process is enough."""

    def __init__(self, backend: Backend, *, clock: Callable[[], float] = time.time) -> None:
        self.backend = backend
        self._clock = clock

    def acquire(self, relay: RelayPolicy, wanted: int) -> tuple[int, float]:
        """How many of ``wanted`` messages may go through ``relay`` now.

        Returns ``(granted, wait)``: ``granted`` (0…wanted) were counted against the limits and
        may be sent; when ``granted`` is 0, ``wait`` is the seconds to wait before asking again.
        A relay without limits gets ``(wanted, 0.0)`` without any backend call. If Redis is
        unreachable nothing is granted (``(0, 1.0)``): limits are never silently dropped.
        """
        if wanted <= 0:
            return 0, 0.0
        if not relay.limited:
            return wanted, 0.0
        now = self._clock()
        moment = datetime.fromtimestamp(now, UTC)
        day_cap = relay.day_cap(moment.date())
        rate = relay.per_second or 0.0
        ask = _Ask(
            key=relay.name,
            now=now,
            wanted=wanted,
            rate=rate,
            burst=max(1.0, rate),
            hour_cap=-1 if relay.per_hour is None else relay.per_hour,
            hour=int(now // HOUR),
            day_cap=-1 if day_cap is None else day_cap,
            day=moment.date().isoformat(),
        )
        try:
            return self.backend.take(ask)
        except Exception as error:  # noqa: BLE001 - e.g. redis.ConnectionError
            log.warning("rate limit for %s unavailable (%s); waiting", relay.name, error)
            return 0, 1.0


def _decide(ask: _Ask, tokens: float, hour_used: int, day_used: int) -> tuple[int, float]:
    """The grant and the wait, from the state of the three limits (tokens already refilled).
    The same rules as the Lua script below."""
    granted, waits = ask.wanted, [0.0]
    if ask.rate > 0:
        granted = min(granted, math.floor(tokens))
        if tokens < 1:
            waits.append((1 - tokens) / ask.rate)
    if ask.hour_cap >= 0:
        granted = min(granted, ask.hour_cap - hour_used)
        if hour_used >= ask.hour_cap:
            waits.append(ask.hour_left)
    if ask.day_cap >= 0:
        granted = min(granted, ask.day_cap - day_used)
        if day_used >= ask.day_cap:
            waits.append(ask.day_left)
    granted = max(0, granted)
    return granted, (0.0 if granted else max(waits))


class MemoryBackend:
    """The limits in this process: right for the embedded default (worker threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._counters: dict[str, int] = {}  # "key:hour:N" / "key:day:DATE" -> used

    def take(self, ask: _Ask) -> tuple[int, float]:
        hour_key, day_key = f"{ask.key}:hour:{ask.hour}", f"{ask.key}:day:{ask.day}"
        with self._lock:
            tokens, at = self._buckets.get(ask.key, (ask.burst, ask.now))
            if ask.now > at:
                tokens, at = min(ask.burst, tokens + (ask.now - at) * ask.rate), ask.now
            granted, wait = _decide(
                ask, tokens, self._counters.get(hour_key, 0), self._counters.get(day_key, 0)
            )
            if granted:
                self._forget_old_windows(ask)
                if ask.rate > 0:
                    self._buckets[ask.key] = (tokens - granted, at)
                self._counters[hour_key] = self._counters.get(hour_key, 0) + granted
                self._counters[day_key] = self._counters.get(day_key, 0) + granted
            return granted, wait

    def _forget_old_windows(self, ask: _Ask) -> None:
        current = {f"{ask.key}:hour:{ask.hour}", f"{ask.key}:day:{ask.day}"}
        for name in [k for k in self._counters if k.startswith(f"{ask.key}:")]:
            if name not in current:
                del self._counters[name]


# KEYS: bucket hash, hour counter, day counter.
# ARGV: now, wanted, rate, burst, hour_cap, day_cap, hour_left, day_left, bucket_ttl_ms.
# Returns {granted, wait as a string} (Lua numbers come back to Redis clients as integers).
_TAKE_SCRIPT = """
local now = tonumber(ARGV[1])
local wanted = tonumber(ARGV[2])
local rate = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local hour_cap = tonumber(ARGV[5])
local day_cap = tonumber(ARGV[6])
local granted = wanted
local wait = 0
local tokens, at = burst, now
if rate > 0 then
  local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
  if state[1] then
    tokens, at = tonumber(state[1]), tonumber(state[2])
    if now > at then
      tokens = math.min(burst, tokens + (now - at) * rate)
      at = now
    end
  end
  granted = math.min(granted, math.floor(tokens))
  if tokens < 1 then wait = math.max(wait, (1 - tokens) / rate) end
end
if hour_cap >= 0 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  granted = math.min(granted, hour_cap - used)
  if used >= hour_cap then wait = math.max(wait, tonumber(ARGV[7])) end
end
if day_cap >= 0 then
  local used = tonumber(redis.call('GET', KEYS[3]) or '0')
  granted = math.min(granted, day_cap - used)
  if used >= day_cap then wait = math.max(wait, tonumber(ARGV[8])) end
end
if granted <= 0 then
  return {0, string.format('%.17g', wait)}
end
if rate > 0 then
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens - granted),
             'at', string.format('%.17g', at))
  redis.call('PEXPIRE', KEYS[1], ARGV[9])
end
if hour_cap >= 0 then
  redis.call('INCRBY', KEYS[2], granted)
  redis.call('EXPIRE', KEYS[2], math.ceil(tonumber(ARGV[7])) + 120)
end
if day_cap >= 0 then
  redis.call('INCRBY', KEYS[3], granted)
  redis.call('EXPIRE', KEYS[3], math.ceil(tonumber(ARGV[8])) + 120)
end
return {granted, '0'}
"""


class RedisBackend:
    """The limits in Redis, shared by every worker on every host; one atomic script call per
    ``take``. Times come from the workers' clocks (keep them in sync with NTP)."""

    def __init__(self, client: Any, *, prefix: str = "newsletter:ratelimit") -> None:
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(_TAKE_SCRIPT)

    def take(self, ask: _Ask) -> tuple[int, float]:
        base = f"{self.prefix}:{ask.key}"
        # An idle bucket refills completely after burst/rate seconds: then it may go.
        bucket_ttl = math.ceil((ask.burst / ask.rate if ask.rate else 1) + KEY_SLACK_SECONDS)
        granted, wait = self._script(
            keys=[f"{base}:second", f"{base}:hour:{ask.hour}", f"{base}:day:{ask.day}"],
            args=[
                repr(ask.now), ask.wanted, repr(ask.rate), repr(ask.burst), ask.hour_cap,
                ask.day_cap, repr(ask.hour_left), repr(ask.day_left), bucket_ttl * 1000,
            ],
        )  # fmt: skip
        return int(granted), float(wait)


# -- choosing the backend -------------------------------------------------------------------

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def redis_url(config: Mapping[str, Any]) -> str | None:
    """The Redis for shared limits: ``REDIS_URL``, else the broker's when that is Redis,
    else None (limits and domain slots are then kept in each process)."""
    url = config.get("REDIS_URL") or config.get("BROKER_URL") or ""
    return str(url) if str(url).startswith(("redis://", "rediss://", "unix://")) else None


def redis_client(url: str) -> Any:
    """One client (and connection pool) per URL for this process; safe across threads and
    after a fork (redis-py opens new connections in the child)."""
    import redis

    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = redis.Redis.from_url(
                url, socket_connect_timeout=5, socket_timeout=10, health_check_interval=30
            )
        return client


def limiter_for(app_or_config: Any) -> RateLimiter:
    """The rate limiter for the app's settings: on Redis when one is configured (see
    :func:`redis_url`), else in this process. Given a Flask app, one limiter per app, which
    every worker thread shares; given a settings mapping, a new one each call."""
    if hasattr(app_or_config, "config") and hasattr(app_or_config, "extensions"):
        limiter = app_or_config.extensions.get("newsletter_ratelimit")
        if limiter is None:
            limiter = _new_limiter(app_or_config.config)
            app_or_config.extensions["newsletter_ratelimit"] = limiter
        return limiter
    return _new_limiter(app_or_config)


def _new_limiter(config: Mapping[str, Any]) -> RateLimiter:
    url = redis_url(config)
    if url:
        prefix = f"{config.get('REDIS_PREFIX') or 'newsletter'}:ratelimit"
        return RateLimiter(RedisBackend(redis_client(url), prefix=prefix))
    broker = str(config.get("BROKER_URL") or "")
    if broker and not broker.startswith("stub"):
        log.warning(
            "rate limits are kept per worker process: set NEWSLETTER_REDIS_URL to share them"
        )
    return RateLimiter(MemoryBackend())
