"""Relays: options from NEWSLETTER_SMTP_URL, weighted choice with failover, and the cap on
simultaneous transactions per recipient domain (shared through Redis on the services pass)."""

from __future__ import annotations

import random
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from newsletter import create_app
from newsletter.delivery.relays.domains import (
    DomainSlots,
    domain_slots_for,
    parse_domain_connections,
)
from newsletter.delivery.relays.routing import (
    RelayPolicy,
    RelayRouter,
    Warmup,
    parse_relay_options,
    relay_policies,
)
from newsletter.errors import ConfigError
from newsletter.mail.transport import Relay
from tests.delivery.helpers import RedisConnections

# -- options ----------------------------------------------------------------------------------


def test_options_are_read_from_each_relay_url() -> None:
    a, b = parse_relay_options(
        "smtp://user:secret@mx1.example.net:587?starttls=true&weight=3&per_second=50"
        "&per_hour=10000&per_day=100000&warmup_start=1000&warmup_days=20&warmup_from=2026-11-01,"
        " smtps://mx2.example.net"
    )
    assert a.relay.host == "mx1.example.net" and a.relay.starttls and a.relay.port == 587
    assert a.name == "user@mx1.example.net:587"
    assert (a.weight, a.per_second, a.per_hour, a.per_day) == (3, 50.0, 10_000, 100_000)
    assert a.warmup == Warmup(start=1000, days=20, since=date(2026, 11, 1), full=100_000)
    assert a.limited
    assert b == RelayPolicy(relay=Relay(scheme="smtps", host="mx2.example.net", port=465))
    assert b.weight == 1 and not b.limited


def test_warmup_days_default_to_thirty() -> None:
    (policy,) = parse_relay_options(
        "smtp://mx.example.net?per_day=5000&warmup_start=100&warmup_from=2026-11-01"
    )
    assert policy.warmup is not None and policy.warmup.days == 30
    assert policy.day_cap(date(2026, 11, 1)) == 100
    assert policy.day_cap(date(2026, 12, 1)) == 5000


def test_the_outbox_has_no_relay_policies(tmp_path: Path) -> None:
    assert relay_policies({"SMTP_URL": None}) == []
    assert relay_policies({"SMTP_URL": ""}) == []
    assert relay_policies({"SMTP_URL": f"maildir://{tmp_path}/box"}) == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("weight=-1", "relay mx.example.net:25: weight='-1' must be at least 0"),
        ("weight=heavy", "relay mx.example.net:25: weight='heavy' is not a whole number"),
        ("per_second=0", "relay mx.example.net:25: per_second='0' must be a number above 0"),
        ("per_second=fast", "relay mx.example.net:25: per_second='fast' is not a number"),
        ("per_second=nan", "relay mx.example.net:25: per_second='nan' must be a number above 0"),
        ("per_hour=0", "relay mx.example.net:25: per_hour='0' must be at least 1"),
        ("per_day=1.5", "relay mx.example.net:25: per_day='1.5' is not a whole number"),
        ("per_sec=5", "relay mx.example.net:25: unknown option 'per_sec'; known options: "),
        ("per_day=5&per_day=6", "relay mx.example.net:25: option 'per_day' is given 2 times"),
        ("warmup_start=10&warmup_from=2026-11-01", "warmup_start needs per_day"),
        ("per_day=100&warmup_start=10", "warmup_start needs warmup_from"),
        ("per_day=100&warmup_start=1000&warmup_from=2026-11-01", "above per_day=100"),
        ("per_day=100&warmup_start=10&warmup_from=1.11.2026", "'1.11.2026' is not a date"),
        ("per_day=100&warmup_start=10&warmup_from=2026-11-01&warmup_days=0", "at least 1"),
        ("per_day=100&warmup_days=3", "warmup_days and warmup_from need warmup_start"),
    ],
)
def test_bad_options_say_what_is_wrong(query: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        parse_relay_options(f"smtp://mx.example.net?{query}")
    assert str(raised.value).startswith("relay mx.example.net:25: ")


def test_a_relay_listed_twice_or_next_to_the_outbox_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="relay mx.example.net:25 is listed twice"):
        parse_relay_options("smtp://mx.example.net,smtp://mx.example.net:25?weight=2")
    with pytest.raises(ValueError, match="cannot be combined"):
        parse_relay_options(f"smtp://mx.example.net,maildir://{tmp_path}")


def test_a_bad_option_stops_the_app_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP_URL", "smtp://mx.example.net?per_second=0")
    with pytest.raises(ConfigError) as raised:
        create_app({"INSTANCE_PATH": str(tmp_path)})
    assert raised.value.setting == "NEWSLETTER_SMTP_URL"
    assert str(raised.value) == (
        "NEWSLETTER_SMTP_URL: relay mx.example.net:25: per_second='0' must be a number above 0"
    )


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("DOMAIN_CONNECTIONS", "gmail.com"),
        ("DOMAIN_CONNECTIONS", "gmail.com=0"),
        ("DOMAIN_CONNECTIONS", "gmail.com=five"),
        ("DOMAIN_CONNECTIONS", "gmail.com=5,GMAIL.com=6"),
        ("DOMAIN_CONNECTIONS", 20),
        ("REDIS_URL", "http://redis.example.net:6379/0"),
    ],
)
def test_bad_domain_caps_and_redis_urls_stop_the_app(
    tmp_path: Path, setting: str, value: Any
) -> None:
    with pytest.raises(ConfigError) as raised:
        create_app({"INSTANCE_PATH": str(tmp_path), setting: value})
    assert raised.value.setting == f"NEWSLETTER_{setting}"
    assert "\n" not in str(raised.value)


def test_domain_caps_are_parsed() -> None:
    assert parse_domain_connections(None) == {}
    assert parse_domain_connections("") == {}
    assert parse_domain_connections(" Gmail.com=5, *=20 ,") == {"gmail.com": 5, "*": 20}


# -- the router -------------------------------------------------------------------------------


def policies(*weights: int) -> list[RelayPolicy]:
    return [
        RelayPolicy(relay=Relay(scheme="smtp", host=f"mx{n}.example.net", port=25), weight=w)
        for n, w in enumerate(weights, start=1)
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_relays_are_chosen_by_weight() -> None:
    router = RelayRouter(policies(3, 1), rng=random.Random(42))
    counts = Counter(router.choose().name for _ in range(8000))  # type: ignore[union-attr]
    assert counts["mx1.example.net:25"] / 8000 == pytest.approx(0.75, abs=0.02)
    assert counts["mx2.example.net:25"] / 8000 == pytest.approx(0.25, abs=0.02)


def test_a_relay_that_keeps_failing_is_skipped_until_its_cooldown_ends() -> None:
    clock = Clock()
    router = RelayRouter(
        policies(1, 1), fail_threshold=3, cooldown_seconds=60, clock=clock, rng=random.Random(1)
    )
    bad = "mx1.example.net:25"
    router.failed(bad)
    router.failed(bad)
    router.succeeded(bad)  # a success in between: the count starts again
    router.failed(bad)
    router.failed(bad)
    assert router.is_up(bad)
    router.failed(bad)  # third in a row
    assert not router.is_up(bad)
    assert {router.choose().name for _ in range(200)} == {"mx2.example.net:25"}  # type: ignore[union-attr]
    clock.now += 59.9
    assert not router.is_up(bad)
    clock.now += 0.1
    assert {router.choose().name for _ in range(200)} == {bad, "mx2.example.net:25"}  # type: ignore[union-attr]
    router.failed(bad)  # still failing after the cooldown: out again at once
    assert not router.is_up(bad)
    clock.now += 60
    router.succeeded(bad)  # recovered: back for good
    router.failed(bad)
    assert router.is_up(bad)


def test_choose_says_none_when_every_relay_is_down_and_when_to_retry() -> None:
    clock = Clock()
    router = RelayRouter(policies(2, 1), fail_threshold=1, cooldown_seconds=30, clock=clock)
    router.failed("mx1.example.net:25")
    clock.now += 10
    router.failed("mx2.example.net:25")
    assert router.choose() is None
    assert router.retry_in() == pytest.approx(20)
    clock.now += 20
    assert router.retry_in() == 0.0
    assert router.choose().name == "mx1.example.net:25"  # type: ignore[union-attr]


def test_the_router_knows_a_relay_by_its_host_and_port_too() -> None:
    a, b = parse_relay_options("smtp://ann:pw@mx1.example.net,smtp://mx2.example.net")
    router = RelayRouter([a, b], fail_threshold=1, clock=Clock())
    router.failed(a.relay.name)  # "mx1.example.net:25", as the transport names it
    assert not router.is_up(a.name)
    assert router.choose() == b
    router.succeeded("mx1.example.net:25")
    assert router.is_up("ann@mx1.example.net:25")


def test_a_standby_relay_takes_over_only_when_the_others_are_down() -> None:
    router = RelayRouter(policies(1, 0), fail_threshold=1, clock=Clock())
    assert {router.choose().name for _ in range(100)} == {"mx1.example.net:25"}  # type: ignore[union-attr]
    router.failed("mx1.example.net:25")
    assert router.choose().name == "mx2.example.net:25"  # type: ignore[union-attr]


# -- domain slots -------------------------------------------------------------------------------

MakeSlots = Callable[[dict[str, int]], DomainSlots]


@pytest.fixture
def new_slots(redis_connections: Callable[[str], RedisConnections]) -> Iterator[MakeSlots]:
    """Domain slots as two workers see them: each with its own Redis connection on the
    services pass; in-process they are one object shared by threads (as in `newsletter run`)."""
    redis = redis_connections("slots")
    shared: list[DomainSlots] = []

    def make(caps: dict[str, int], **options: Any) -> DomainSlots:
        if redis.url is None:
            if not shared:
                shared.append(DomainSlots(caps, **options))
            return shared[0]
        return DomainSlots(caps, redis=redis.connect(), prefix=redis.prefix, **options)

    yield make


def test_the_domain_cap_holds_across_workers(new_slots: MakeSlots) -> None:
    caps = {"gmail.com": 2, "*": 3}
    one, two = new_slots(caps), new_slots(caps)
    assert one.acquire("gmail.com")
    assert two.acquire("GMAIL.COM")
    assert not one.acquire("gmail.com")
    assert not two.acquire("gmail.com")
    assert one.in_use("gmail.com") == 2
    two.release("gmail.com")
    assert one.acquire("gmail.com")
    # any other domain: its own three slots
    assert [one.acquire("example.org") for _ in range(4)] == [True, True, True, False]
    assert two.acquire("example.com")


def test_concurrent_transactions_never_exceed_the_cap(new_slots: MakeSlots) -> None:
    caps = {"gmail.com": 3}
    workers = [new_slots(caps), new_slots(caps)]
    peak, lock, inside = [0], threading.Lock(), [0]

    def work(slots: DomainSlots) -> None:
        for _ in range(100):
            if slots.acquire("gmail.com"):
                with lock:
                    inside[0] += 1
                    peak[0] = max(peak[0], inside[0])
                with lock:
                    inside[0] -= 1
                slots.release("gmail.com")

    threads = [threading.Thread(target=work, args=(workers[n % 2],)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 <= peak[0] <= 3
    assert workers[0].in_use("gmail.com") == 0


def test_no_cap_means_no_bookkeeping(new_slots: MakeSlots) -> None:
    slots = new_slots({"gmail.com": 1})
    assert all(slots.acquire("example.org") for _ in range(100))
    slots.release("example.org")
    assert slots.in_use("example.org") == 0


def test_a_slot_held_by_a_killed_worker_expires(backend: dict[str, str | None]) -> None:
    url = backend["broker"]
    if not (url or "").startswith("redis"):
        pytest.skip("slot expiry is a Redis matter: in-process slots die with the process")
    import redis

    clock = Clock()
    client = redis.Redis.from_url(url or "")
    prefix = f"nl-test-slots:{uuid.uuid4().hex}"
    try:
        dead = DomainSlots({"*": 1}, redis=client, prefix=prefix, ttl_seconds=120, clock=clock)
        alive = DomainSlots({"*": 1}, redis=client, prefix=prefix, ttl_seconds=120, clock=clock)
        assert dead.acquire("example.org")  # ... and the worker is killed: never released
        assert not alive.acquire("example.org")
        clock.now += 121
        assert alive.acquire("example.org")
    finally:
        client.delete(f"{prefix}:example.org")
        client.close()


def test_domain_slots_for_an_app_follow_its_settings(app_config: dict[str, Any]) -> None:
    app_config["DOMAIN_CONNECTIONS"] = "gmail.com=5,*=20"
    app: Flask = create_app(app_config)
    slots = domain_slots_for(app)
    assert domain_slots_for(app) is slots
    assert slots.cap_for("gmail.com") == 5 and slots.cap_for("example.org") == 20
    redis_configured = (app.config["BROKER_URL"] or "").startswith("redis")
    assert (slots._redis is not None) == redis_configured
