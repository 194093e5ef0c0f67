"""Per-relay rate limits: the bucket and quota arithmetic on a clock the tests move, shared
between limiters (two worker processes on Redis, two threads in-process).

Each test runs on the backend of the pass: in-process on the embedded default, Redis when
``NEWSLETTER_TEST_BROKER_URL`` names one.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from flask import Flask

from newsletter.delivery.relays.limits import (
    MemoryBackend,
    RateLimiter,
    RedisBackend,
    limiter_for,
    redis_url,
)
from newsletter.delivery.relays.routing import RelayPolicy, Warmup
from newsletter.mail.transport import Relay
from tests.delivery.helpers import RedisConnections

RELAY = Relay(scheme="smtp", host="relay.example.net", port=25)


class Clock:
    """Wall-clock seconds that move only when the test says so."""

    def __init__(self, at: datetime) -> None:
        self.now = at.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def approx(seconds: float) -> Any:
    """Timestamps near 1.8e9 keep about 1e-7 s of a fraction."""
    return pytest.approx(seconds, abs=1e-5)


def at(text: str) -> Clock:
    return Clock(datetime.fromisoformat(text).replace(tzinfo=UTC))


def policy(**limits: Any) -> RelayPolicy:
    return RelayPolicy(relay=RELAY, **limits)


MakeLimiter = Callable[[Clock], RateLimiter]


@pytest.fixture
def new_limiter(
    redis_connections: Callable[[str], RedisConnections],
) -> Iterator[MakeLimiter]:
    """Make limiters that share one set of buckets, as the workers of one installation do:
    each with its own Redis connection (another worker process) on Redis, else sharing one
    in-process backend (another worker thread)."""
    redis = redis_connections("ratelimit")
    memory = MemoryBackend()

    def make(clock: Clock) -> RateLimiter:
        if redis.url is None:
            return RateLimiter(memory, clock=clock)
        return RateLimiter(RedisBackend(redis.connect(), prefix=redis.prefix), clock=clock)

    yield make


def drain(limiter: RateLimiter, relay: RelayPolicy, chunk: int = 1000) -> int:
    """Ask until the limiter says wait; how many were granted in all."""
    total = 0
    for _ in range(10_000):  # bounded: a limiter that never says wait fails, not hangs
        granted, wait = limiter.acquire(relay, chunk)
        if not granted:
            assert wait > 0
            return total
        total += granted
    raise AssertionError(f"still granting after {total}")


class CountingBackend(MemoryBackend):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def take(self, ask: Any) -> tuple[int, float]:
        self.calls += 1
        return super().take(ask)


def test_a_relay_without_limits_never_asks_the_backend() -> None:
    backend = CountingBackend()
    limiter = RateLimiter(backend)
    assert limiter.acquire(policy(weight=3), 5000) == (5000, 0.0)
    assert backend.calls == 0
    limiter.acquire(policy(per_hour=10), 1)
    assert backend.calls == 1


def test_per_second_is_a_bucket_of_one_seconds_worth(new_limiter: MakeLimiter) -> None:
    clock = at("2026-11-03 10:00:00")
    limiter, relay = new_limiter(clock), policy(per_second=10)
    assert limiter.acquire(relay, 25) == (10, 0.0)  # a full bucket: one second's worth
    granted, wait = limiter.acquire(relay, 25)
    assert granted == 0
    assert wait == approx(0.1)  # one token comes back every 1/10 s
    clock.advance(0.35)
    assert limiter.acquire(relay, 25) == (3, 0.0)  # 3.5 tokens: whole messages only
    granted, wait = limiter.acquire(relay, 1)
    assert granted == 0 and wait == approx(0.05)
    clock.advance(3600)  # idle for an hour: the bucket holds one second's worth, no more
    assert limiter.acquire(relay, 1000) == (10, 0.0)


def test_a_fractional_rate_sends_one_message_every_few_seconds(new_limiter: MakeLimiter) -> None:
    clock = at("2026-11-03 10:00:00")
    limiter, relay = new_limiter(clock), policy(per_second=0.5)
    assert limiter.acquire(relay, 10) == (1, 0.0)
    assert limiter.acquire(relay, 10) == (0, approx(2.0))
    clock.advance(1.0)
    assert limiter.acquire(relay, 10) == (0, approx(1.0))
    clock.advance(1.0)
    assert limiter.acquire(relay, 10) == (1, 0.0)


def test_per_hour_counts_the_clock_hour(new_limiter: MakeLimiter) -> None:
    clock = at("2026-11-03 10:59:00")
    limiter, relay = new_limiter(clock), policy(per_hour=100)
    assert limiter.acquire(relay, 60) == (60, 0.0)
    assert limiter.acquire(relay, 60) == (40, 0.0)  # what is left of the hour
    assert limiter.acquire(relay, 1) == (0, approx(60.0))  # until 11:00
    clock.advance(60)
    assert drain(limiter, relay) == 100


def test_per_day_counts_the_utc_day_and_waits_until_midnight(new_limiter: MakeLimiter) -> None:
    clock = at("2026-11-03 18:00:00")
    limiter, relay = new_limiter(clock), policy(per_day=2500)
    assert drain(limiter, relay) == 2500
    assert limiter.acquire(relay, 1) == (0, approx(6 * 3600))
    clock.advance(6 * 3600)
    assert drain(limiter, relay, chunk=700) == 2500


def test_the_tightest_limit_decides(new_limiter: MakeLimiter) -> None:
    clock = at("2026-11-03 10:00:00")
    limiter = new_limiter(clock)
    relay = policy(per_second=50, per_hour=120, per_day=1000)
    assert limiter.acquire(relay, 500) == (50, 0.0)
    clock.advance(1)
    assert limiter.acquire(relay, 500) == (50, 0.0)
    clock.advance(1)
    assert limiter.acquire(relay, 500) == (20, 0.0)  # the hour's 120 are used up
    granted, wait = limiter.acquire(relay, 500)
    assert granted == 0 and wait == approx(3600 - 2)


def test_warmup_caps_day_zero_at_the_start_value(new_limiter: MakeLimiter) -> None:
    ramp = Warmup(start=1000, days=30, since=date(2026, 11, 1), full=100_000)
    relay = policy(per_day=100_000, warmup=ramp)
    clock = at("2026-11-01 08:00:00")
    limiter = new_limiter(clock)
    assert drain(limiter, relay) == 1000
    assert limiter.acquire(relay, 1) == (0, approx(16 * 3600))


def test_warmup_reaches_per_day_on_day_n(new_limiter: MakeLimiter) -> None:
    ramp = Warmup(start=1000, days=30, since=date(2026, 11, 1), full=100_000)
    relay = policy(per_day=100_000, warmup=ramp)
    clock = at("2026-12-01 00:00:00")  # day 30
    assert drain(new_limiter(clock), relay, chunk=10_000) == 100_000


def test_warmup_grows_by_the_same_factor_each_day() -> None:
    ramp = Warmup(start=1000, days=30, since=date(2026, 11, 1), full=100_000)
    assert ramp.cap_on(date(2026, 10, 20)) == 1000  # not started yet: still cold
    assert ramp.cap_on(date(2026, 11, 1)) == 1000
    assert ramp.cap_on(date(2026, 11, 16)) == 10_000  # halfway: the geometric mean
    assert ramp.cap_on(date(2026, 12, 1)) == 100_000
    assert ramp.cap_on(date(2027, 6, 1)) == 100_000
    caps = [ramp.cap_on(date(2026, 11, 1 + n)) for n in range(30)]
    assert caps == sorted(caps) and len(set(caps)) == 30


def test_two_workers_share_one_budget(new_limiter: MakeLimiter) -> None:
    clock = at("2026-11-03 10:00:00")
    one, two = new_limiter(clock), new_limiter(clock)
    relay = policy(per_second=10, per_day=25)
    assert one.acquire(relay, 6) == (6, 0.0)
    assert two.acquire(relay, 6) == (4, 0.0)  # the same bucket: 4 tokens left
    assert one.acquire(relay, 6)[0] == 0
    clock.advance(1)
    assert two.acquire(relay, 100) == (10, 0.0)
    clock.advance(1)
    assert one.acquire(relay, 100) == (5, 0.0)  # the day's 25 are used up by both
    assert two.acquire(relay, 1)[0] == 0


def test_concurrent_workers_never_exceed_the_cap(new_limiter: MakeLimiter) -> None:
    clock = at("2026-11-03 10:00:00")
    limiters = [new_limiter(clock), new_limiter(clock)]
    relay = policy(per_hour=5000)
    granted: list[int] = []
    lock = threading.Lock()

    def work(limiter: RateLimiter, chunk: int) -> None:
        for _ in range(2000):
            got, _ = limiter.acquire(relay, chunk)
            if not got:
                return
            with lock:
                granted.append(got)

    threads = [threading.Thread(target=work, args=(limiters[n % 2], 7 + n * 13)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 5000


def test_unreachable_redis_grants_nothing_and_says_wait() -> None:
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    limiter = RateLimiter(RedisBackend(client))
    assert limiter.acquire(policy(per_second=10), 5) == (0, 1.0)


def test_limiter_for_picks_redis_when_one_is_configured() -> None:
    assert redis_url({"BROKER_URL": None}) is None
    assert redis_url({"BROKER_URL": "amqp://rabbit:5672/"}) is None
    assert redis_url({"BROKER_URL": "redis://broker:6379/0"}) == "redis://broker:6379/0"
    both = {"BROKER_URL": "redis://broker:6379/0", "REDIS_URL": "redis://limits:6379/2"}
    assert redis_url(both) == "redis://limits:6379/2"
    assert isinstance(limiter_for({"BROKER_URL": None}).backend, MemoryBackend)
    assert isinstance(limiter_for({"BROKER_URL": "stub://"}).backend, MemoryBackend)
    assert isinstance(limiter_for({"REDIS_URL": "redis://limits:6379/2"}).backend, RedisBackend)


def test_limiter_for_an_app_is_shared_by_its_workers(app: Flask) -> None:
    limiter = limiter_for(app)
    assert limiter_for(app) is limiter
    expected = (
        RedisBackend if (app.config["BROKER_URL"] or "").startswith("redis") else MemoryBackend
    )
    assert isinstance(limiter.backend, expected)


def test_installations_with_their_own_prefix_keep_their_own_budgets(
    backend: dict[str, str | None],
) -> None:
    url = backend["broker"]
    if not (url or "").startswith("redis"):
        pytest.skip("key prefixes are a Redis matter")
    relay = policy(per_hour=3)
    clock = at("2026-11-03 10:00:00")
    prefixes = [f"nl-test-{uuid.uuid4().hex}" for _ in range(2)]
    first, second = (limiter_for({"REDIS_URL": url, "REDIS_PREFIX": p}) for p in prefixes)
    same = limiter_for({"REDIS_URL": url, "REDIS_PREFIX": prefixes[0]})
    for limiter in (first, second, same):
        limiter._clock = clock
    try:
        assert first.acquire(relay, 10) == (3, 0.0)
        assert same.acquire(relay, 10)[0] == 0  # the same installation: the same budget
        assert second.acquire(relay, 10) == (3, 0.0)
    finally:
        client = first.backend.client  # type: ignore[attr-defined]
        for prefix in prefixes:
            keys = list(client.scan_iter(f"{prefix}:*"))
            if keys:
                client.delete(*keys)
