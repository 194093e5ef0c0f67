"""Login throttling: backoff per account and per client address, in memory or in Redis, and
the start-up warning when each process would count on its own."""

from __future__ import annotations

import logging
import os
import sys
import types
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from newsletter.auth import throttle as throttling
from newsletter.auth.throttle import (
    ACCOUNT,
    ADDRESS,
    EXTENSION_KEY,
    LoginThrottle,
    MemoryStore,
    RedisStore,
    Store,
    per_process_warning,
)
from tests.helpers import TEST_BROKER_URL

REDIS = TEST_BROKER_URL if (TEST_BROKER_URL or "").startswith("redis") else None


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if REDIS is None:
        pytest.skip("Redis is tested on the PostgreSQL + Redis run (NEWSLETTER_TEST_BROKER_URL)")
    import redis

    client = redis.Redis.from_url(REDIS)
    prefix = f"test-login-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield RedisStore(client, prefix=prefix)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def test_the_backoff_doubles_after_the_free_failures_up_to_its_cap() -> None:
    waits = [ACCOUNT.wait_after(n) for n in range(4, 20)]
    assert waits[:5] == [0, 2, 4, 8, 16]
    assert max(waits) == ACCOUNT.cap == 15 * 60
    assert ADDRESS.free > ACCOUNT.free  # offices share an address


def test_an_account_waits_longer_after_each_failure(store: Store) -> None:
    clock = Clock()
    guard = LoginThrottle(store, clock=clock)
    for _ in range(ACCOUNT.free):
        assert guard.wait("ed@example.org", "192.0.2.1") <= 0
        guard.failed("ed@example.org", "192.0.2.1")
    assert guard.wait("ed@example.org", "192.0.2.1") == pytest.approx(2)
    assert guard.wait("ED@example.org ", "198.51.100.2") == pytest.approx(2)  # same account
    clock.now += 2
    guard.failed("ed@example.org", "192.0.2.1")
    assert guard.wait("ed@example.org", "192.0.2.1") == pytest.approx(4)
    assert guard.wait("other@example.org", "198.51.100.2") <= 0


def test_a_success_clears_the_account_but_not_the_client_address(store: Store) -> None:
    clock = Clock()
    guard = LoginThrottle(store, clock=clock)
    for number in range(ADDRESS.free):
        guard.failed(f"person{number}@example.org", "192.0.2.1")
    guard.succeeded("person0@example.org")
    assert guard.wait("person0@example.org", "198.51.100.2") <= 0
    assert guard.wait("person0@example.org", "192.0.2.1") == pytest.approx(2)


def test_a_cool_down_lets_one_through_per_period(store: Store) -> None:
    guard = LoginThrottle(store)
    assert guard.cool_down("reset", "ed@example.org", 60)
    assert not guard.cool_down("reset", "ED@example.org", 60)
    assert guard.cool_down("reset", "other@example.org", 60)


def test_addresses_typed_at_the_login_are_not_kept_in_clear(store: Store) -> None:
    guard = LoginThrottle(store)
    guard.failed("ed@example.org", "192.0.2.1")
    if isinstance(store, MemoryStore):
        keys = list(store._failures)
    else:
        keys = [key.decode() for key in store.client.scan_iter(f"{store.prefix}:*")]
    assert keys and not any("ed@example.org" in key for key in keys)


def test_the_memory_store_does_not_grow_without_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MemoryStore, "MAX_KEYS", 100)
    store = MemoryStore()
    for number in range(1000):
        store.add(f"account:{number}", float(number), ttl=3600)
    assert len(store._failures) <= 101
    assert store.get("account:999", 999.0)[0] == 1  # the newest are kept


def test_with_redis_configured_every_app_shares_the_counts(
    app_config: dict[str, Any], app: Flask
) -> None:
    if REDIS is None:
        pytest.skip("Redis is tested on the PostgreSQL + Redis run (NEWSLETTER_TEST_BROKER_URL)")
    from newsletter import create_app

    other = create_app(app_config)  # another web process, as far as the counts go
    first, second = app.extensions[EXTENSION_KEY], other.extensions[EXTENSION_KEY]
    assert isinstance(first.store, RedisStore)
    account = f"shared-{uuid.uuid4().hex[:8]}@example.org"
    for _ in range(ACCOUNT.free):
        first.failed(account, "192.0.2.1")
    assert second.wait(account, "198.51.100.2") > 0


def test_without_redis_the_counts_stay_in_the_process(app: Flask) -> None:
    if REDIS is not None:
        pytest.skip("this run has Redis configured")
    assert isinstance(app.extensions[EXTENSION_KEY].store, MemoryStore)


@pytest.mark.parametrize(
    ("config", "gunicorn", "warns"),
    [
        ({"BROKER_URL": None}, False, False),  # the embedded default: one process
        ({"BROKER_URL": "stub://"}, False, False),
        ({"BROKER_URL": None}, True, True),  # gunicorn workers
        ({"BROKER_URL": "amqp://rabbit:5672/"}, False, True),  # separate `newsletter worker`s
    ],
)
def test_the_warning_names_when_each_process_would_count_alone(
    config: dict[str, Any], gunicorn: bool, warns: bool
) -> None:
    modules = {"gunicorn": types.ModuleType("gunicorn")} if gunicorn else {}
    warning = per_process_warning(config, modules)
    assert (warning is not None) == warns
    if warning:
        assert "NEWSLETTER_REDIS_URL" in warning


def test_the_app_warns_at_start_up_under_gunicorn_with_a_memory_store(
    app_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from newsletter import create_app

    monkeypatch.setitem(app_config, "BROKER_URL", None)
    monkeypatch.setitem(app_config, "REDIS_URL", None)
    monkeypatch.setitem(sys.modules, "gunicorn", types.ModuleType("gunicorn"))
    with caplog.at_level(logging.WARNING, logger=throttling.__name__):
        create_app(app_config)
    assert "login throttling is counted per process" in caplog.text
