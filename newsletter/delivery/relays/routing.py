"""Which relay a message goes through, and how fast: per-relay options, the router that
spreads mail over healthy relays by weight, and the per-domain cap on simultaneous
transactions.

Per-relay options live in the query of each URL in ``NEWSLETTER_SMTP_URL``::

    smtp://host:25?weight=3&per_second=50&per_hour=10000&per_day=100000
        &warmup_start=1000&warmup_days=30&warmup_from=2026-11-01

``weight`` (default 1; 0 = standby, used only when every weighted relay is down),
``per_second`` (a token bucket, may be fractional: 0.5 = one message every two seconds),
``per_hour`` and ``per_day`` (quotas per UTC clock hour and UTC calendar day), and the warm-up
ramp: from ``warmup_from`` on, the daily cap starts at ``warmup_start`` and grows by the same
factor each day until it reaches ``per_day`` after ``warmup_days`` days (before the start date
the cap is ``warmup_start``). The limits themselves are enforced by
:mod:`newsletter.delivery.relays.limits`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlsplit

from newsletter.mail.transport import Relay, parse_relay_urls

log = logging.getLogger(__name__)

#: query keys the transport itself reads (mail/transport.py); accepted, not ours
TRANSPORT_OPTIONS = frozenset({"starttls"})
RELAY_OPTIONS = frozenset(
    {"weight", "per_second", "per_hour", "per_day", "warmup_start", "warmup_days", "warmup_from"}
)
DEFAULT_WARMUP_DAYS = 30


@dataclass(frozen=True)
class Warmup:
    """A daily cap growing geometrically from ``start`` on ``since`` to ``full`` after
    ``days`` days."""

    start: int
    days: int
    since: date
    full: int

    def cap_on(self, day: date) -> int:
        """The daily cap on ``day``: ``start`` up to the start date, ``full`` from day
        ``days`` on, and in between ``start · (full/start)^(n/days)``, rounded down."""
        n = (day - self.since).days
        if n <= 0:
            return self.start
        if n >= self.days:
            return self.full
        return max(self.start, int(self.start * (self.full / self.start) ** (n / self.days)))


@dataclass(frozen=True)
class RelayPolicy:
    """One relay with its weight and limits (None: no such limit)."""

    relay: Relay
    weight: int = 1
    per_second: float | None = None
    per_hour: int | None = None
    per_day: int | None = None
    warmup: Warmup | None = None

    @property
    def name(self) -> str:
        """A stable name for logs, the router and the shared rate-limit keys."""
        if self.relay.username:
            return f"{self.relay.username}@{self.relay.name}"
        return self.relay.name

    @property
    def limited(self) -> bool:
        """True when any limit applies (otherwise the rate limiter is never asked)."""
        return self.per_second is not None or self.per_hour is not None or self.day_limited

    @property
    def day_limited(self) -> bool:
        return self.per_day is not None or self.warmup is not None

    def day_cap(self, day: date) -> int | None:
        """The most messages this relay may take on the UTC day ``day`` (None: no cap)."""
        if self.warmup is not None:
            return self.warmup.cap_on(day)
        return self.per_day


def relay_policies(config: Mapping[str, Any]) -> list[RelayPolicy]:
    """The relays of ``config["SMTP_URL"]`` with their options; ``[]`` for the outbox.

    :raises ValueError: one sentence naming the relay and the option that cannot work.
    """
    return parse_relay_options(config.get("SMTP_URL"))


def parse_relay_options(value: str | None) -> list[RelayPolicy]:
    """Parse ``NEWSLETTER_SMTP_URL`` into policies (see the module docstring for options).

    :raises ValueError: one sentence naming the relay and the option that cannot work.
    """
    relays = parse_relay_urls(value)
    if not relays:
        return []
    urls = [part.strip() for part in str(value).split(",") if part.strip()]
    if any(relay.scheme == "maildir" for relay in relays):
        if len(relays) > 1:
            raise ValueError("a maildir:// outbox cannot be combined with other relays")
        return []
    policies = [_policy(relay, url) for relay, url in zip(relays, urls, strict=True)]
    names = [policy.name for policy in policies]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"relay {name} is listed twice")
    return policies


def _policy(relay: Relay, url: str) -> RelayPolicy:
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    where = f"relay {relay.name}"
    for key, values in query.items():
        if key not in RELAY_OPTIONS | TRANSPORT_OPTIONS:
            known = ", ".join(sorted(RELAY_OPTIONS | TRANSPORT_OPTIONS))
            raise ValueError(f"{where}: unknown option {key!r}; known options: {known}")
        if len(values) > 1:
            raise ValueError(f"{where}: option {key!r} is given {len(values)} times")
    options = {key: values[0].strip() for key, values in query.items()}
    weight = _int(options, "weight", where, minimum=0)
    per_day = _int(options, "per_day", where, minimum=1)
    return RelayPolicy(
        relay=relay,
        weight=1 if weight is None else weight,
        per_second=_rate(options, where),
        per_hour=_int(options, "per_hour", where, minimum=1),
        per_day=per_day,
        warmup=_warmup(options, where, per_day),
    )


def _int(options: dict[str, str], key: str, where: str, *, minimum: int) -> int | None:
    if key not in options:
        return None
    text = options[key]
    try:
        number = int(text)
    except ValueError:
        raise ValueError(f"{where}: {key}={text!r} is not a whole number") from None
    if number < minimum:
        raise ValueError(f"{where}: {key}={text!r} must be at least {minimum}")
    return number


def _rate(options: dict[str, str], where: str) -> float | None:
    if "per_second" not in options:
        return None
    text = options["per_second"]
    try:
        rate = float(text)
    except ValueError:
        raise ValueError(f"{where}: per_second={text!r} is not a number") from None
    if not (rate > 0 and rate != float("inf")):
        raise ValueError(f"{where}: per_second={text!r} must be a number above 0")
    return rate


def _warmup(options: dict[str, str], where: str, per_day: int | None) -> Warmup | None:
    start = _int(options, "warmup_start", where, minimum=1)
    days = _int(options, "warmup_days", where, minimum=1)
    since_text = options.get("warmup_from")
    if start is None:
        if days is not None or since_text is not None:
            raise ValueError(f"{where}: warmup_days and warmup_from need warmup_start")
        return None
    if per_day is None:
        raise ValueError(f"{where}: warmup_start needs per_day, the daily cap the ramp grows to")
    if start > per_day:
        raise ValueError(f"{where}: warmup_start={start} is above per_day={per_day}")
    if not since_text:
        raise ValueError(f"{where}: warmup_start needs warmup_from, the first day (YYYY-MM-DD)")
    try:
        since = date.fromisoformat(since_text)
    except ValueError:
        raise ValueError(
            f"{where}: warmup_from={since_text!r} is not a date like 2026-11-01"
        ) from None
    return Warmup(start=start, days=days or DEFAULT_WARMUP_DAYS, since=since, full=per_day)


# -- choosing a relay -----------------------------------------------------------------------


@dataclass
class _Health:
    failures: int = 0  # in a row
    down_until: float | None = None


class RelayRouter:
    """Weighted choice among healthy relays, with failover. One per worker process (it is
    thread-safe); health is what this process has seen, not shared.

    A relay that fails ``fail_threshold`` times in a row is skipped for ``cooldown_seconds``;
    after that it is offered again, and one more failure (before any success) takes it out for
    another cooldown. Relays with weight 0 are standby: chosen only when no weighted relay is
    up.
    """

    def __init__(
        self,
        policies: list[RelayPolicy],
        *,
        fail_threshold: int = 3,
        cooldown_seconds: float = 60,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if fail_threshold < 1:
            raise ValueError("fail_threshold must be at least 1")
        self.policies = list(policies)
        self.fail_threshold = fail_threshold
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock
        self._rng = rng or random.Random()
        self._by_name = {policy.name: policy for policy in self.policies}
        self._health = {policy.name: _Health() for policy in self.policies}
        # The relay's own name (host:port, without the user) works too where it is unique.
        plain = Counter(policy.relay.name for policy in self.policies)
        self._aliases = {
            policy.relay.name: policy.name
            for policy in self.policies
            if plain[policy.relay.name] == 1
        }
        self._lock = threading.Lock()

    def choose(self) -> RelayPolicy | None:
        """A relay for the next message, weighted among those up; None when all are down."""
        with self._lock:
            now = self._clock()
            up = [policy for policy in self.policies if self._is_up(policy.name, now)]
            weighted = [policy for policy in up if policy.weight > 0]
            if weighted:
                return self._rng.choices(weighted, [p.weight for p in weighted])[0]
            if up:
                return self._rng.choice(up)
            return None

    def succeeded(self, relay_name: str) -> None:
        """The relay took a connection or a message: it is healthy again.

        ``relay_name`` is the policy's ``name``, or ``policy.relay.name`` (host:port)."""
        with self._lock:
            health = self._health.get(self._resolve(relay_name))
            if health is not None:
                health.failures, health.down_until = 0, None

    def failed(self, relay_name: str) -> None:
        """Connection-level trouble with the relay (refused, timed out, dropped, 421); a 4xx or
        5xx about one recipient is not the relay's fault and must not be reported here."""
        with self._lock:
            relay_name = self._resolve(relay_name)
            health = self._health.get(relay_name)
            if health is None:
                return
            health.failures += 1
            if health.failures >= self.fail_threshold:
                health.down_until = self._clock() + self.cooldown_seconds
                log.warning(
                    "relay %s failed %d times in a row; skipped for %gs",
                    relay_name, health.failures, self.cooldown_seconds,
                )  # fmt: skip

    def is_up(self, relay_name: str) -> bool:
        """True when ``choose`` may pick this relay now."""
        with self._lock:
            relay_name = self._resolve(relay_name)
            return relay_name in self._health and self._is_up(relay_name, self._clock())

    def retry_in(self) -> float:
        """Seconds until the first relay that is down comes back (0.0 when one is up)."""
        with self._lock:
            now = self._clock()
            if any(self._is_up(name, now) for name in self._health):
                return 0.0
            ends = [h.down_until for h in self._health.values() if h.down_until is not None]
            return max(0.0, min(ends) - now) if ends else 0.0

    def policy(self, relay_name: str) -> RelayPolicy:
        """The policy of the relay with this name."""
        return self._by_name[self._resolve(relay_name)]

    def _resolve(self, name: str) -> str:
        return name if name in self._health else self._aliases.get(name, name)

    def _is_up(self, name: str, now: float) -> bool:
        down_until = self._health[name].down_until
        return down_until is None or now >= down_until
