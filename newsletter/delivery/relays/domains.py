"""The per-domain cap on simultaneous transactions, shared by every worker through Redis."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from newsletter.delivery.relays.limits import redis_client, redis_url

log = logging.getLogger(__name__)


# -- simultaneous transactions per recipient domain -----------------------------------------


def parse_domain_connections(value: str | Mapping[str, int] | None) -> dict[str, int]:
    """``"gmail.com=5,*=20"`` → ``{"gmail.com": 5, "*": 20}``; empty or None → no caps.

    :raises ValueError: one sentence naming the entry that cannot work.
    """
    if not value:
        return {}
    if isinstance(value, Mapping):
        pairs = [(str(key), str(cap)) for key, cap in value.items()]
    else:
        pairs = []
        for entry in str(value).split(","):
            if not entry.strip():
                continue
            domain, sep, cap_part = entry.partition("=")
            if not sep:
                raise ValueError(f"{entry.strip()!r} is not like domain=N (e.g. gmail.com=5,*=20)")
            pairs.append((domain, cap_part))
    caps: dict[str, int] = {}
    for domain, cap_text in pairs:
        domain = domain.strip().lower()
        if not domain or any(ch.isspace() or ch in "=/@" for ch in domain):
            raise ValueError(f"{domain!r} is not a domain name or *")
        try:
            cap = int(cap_text.strip())
        except ValueError:
            raise ValueError(
                f"{domain}={cap_text.strip()!r}: the cap is not a whole number"
            ) from None
        if cap < 1:
            raise ValueError(f"{domain}={cap}: the cap must be at least 1")
        if domain in caps:
            raise ValueError(f"{domain} is listed twice")
        caps[domain] = cap
    return caps


class DomainSlots:
    """A cap on simultaneous SMTP transactions per recipient domain, shared by every worker
    when Redis is configured (in-process otherwise).

    ``acquire(domain)`` takes a slot if one is free (True) or says no at once (False); the
    caller gives it back with ``release(domain)`` when the transaction is over. On Redis each
    slot is held for at most ``ttl_seconds``: a worker killed while holding one cannot block
    the domain for longer. Caps are per domain: with ``*=20`` every other domain gets 20.
    """

    def __init__(
        self,
        caps: Mapping[str, int],
        *,
        redis: Any = None,
        prefix: str = "newsletter:domainslots",
        ttl_seconds: float = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.caps = dict(caps)
        self.ttl_seconds = ttl_seconds
        self._redis = redis
        self._prefix = prefix
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}  # in-process: slots in use per domain
        self._held: dict[str, list[str]] = {}  # Redis: our slot ids per domain
        self._script = redis.register_script(_SLOT_SCRIPT) if redis is not None else None

    def cap_for(self, domain: str) -> int | None:
        """The cap for ``domain`` (None: no cap)."""
        domain = domain.strip().lower()
        return self.caps.get(domain, self.caps.get("*"))

    def acquire(self, domain: str) -> bool:
        """Take a slot for one transaction to ``domain``; False when all are in use."""
        domain = domain.strip().lower()
        cap = self.cap_for(domain)
        if cap is None:
            return True
        if self._script is None:
            with self._lock:
                if self._counts.get(domain, 0) >= cap:
                    return False
                self._counts[domain] = self._counts.get(domain, 0) + 1
                return True
        # the set itself goes when its newest slot has expired (a minute's slack for clocks)
        key_ttl_ms = int((self.ttl_seconds + 60) * 1000)
        slot = f"{threading.get_ident()}:{time.monotonic_ns()}:{random.getrandbits(32)}"
        now = self._clock()
        try:
            taken = self._script(
                keys=[f"{self._prefix}:{domain}"],
                args=[now, now + self.ttl_seconds, cap, slot, key_ttl_ms],
            )
        except Exception as error:  # noqa: BLE001 - Redis away: behave as "busy", try later
            log.warning("domain slots: Redis unavailable (%s); treating %s as busy", error, domain)
            return False
        if not taken:
            return False
        with self._lock:
            self._held.setdefault(domain, []).append(slot)
        return True

    def release(self, domain: str) -> None:
        """Give back a slot taken with ``acquire(domain)``."""
        domain = domain.strip().lower()
        if self.cap_for(domain) is None:
            return
        with self._lock:
            if self._redis is None:
                if self._counts.get(domain, 0) > 0:
                    self._counts[domain] -= 1
                return
            held = self._held.get(domain)
            if not held:
                return
            slot = held.pop()
        try:
            self._redis.zrem(f"{self._prefix}:{domain}", slot)
        except Exception as error:  # noqa: BLE001 - the slot expires on its own
            log.warning("domain slots: cannot release %s (%s); it expires", domain, error)

    def in_use(self, domain: str) -> int:
        """Slots taken for ``domain`` now, by every worker (for tests and progress)."""
        domain = domain.strip().lower()
        if self._redis is None:
            with self._lock:
                return self._counts.get(domain, 0)
        key = f"{self._prefix}:{domain}"
        return int(self._redis.zcount(key, f"({self._clock()}", "+inf"))


# Slots are members of a sorted set scored by when they expire: expired ones are dropped
# before counting, so a slot whose holder died frees itself after the TTL.
_SLOT_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""


def domain_slots_for(app_or_config: Any) -> DomainSlots:
    """The domain slots for the app's settings: on Redis when one is configured (see
    :func:`newsletter.delivery.relays.limits.redis_url`), else in this process. Given a Flask app,
    one instance per app (the worker threads share it)."""
    config, extensions = _config_of(app_or_config)
    if extensions is not None and "newsletter_domain_slots" in extensions:
        return extensions["newsletter_domain_slots"]
    url = redis_url(config)
    timeout = float(config.get("SMTP_TIMEOUT") or 30)
    slots = DomainSlots(
        parse_domain_connections(config.get("DOMAIN_CONNECTIONS")),
        redis=redis_client(url) if url else None,
        prefix=f"{config.get('REDIS_PREFIX') or 'newsletter'}:domainslots",
        # a transaction waits at most a timeout per step (connect, MAIL, RCPT, DATA)
        ttl_seconds=max(60.0, 4 * timeout),
    )
    if extensions is not None:
        extensions["newsletter_domain_slots"] = slots
    return slots


def _config_of(app_or_config: Any) -> tuple[Mapping[str, Any], dict[str, Any] | None]:
    if hasattr(app_or_config, "config") and hasattr(app_or_config, "extensions"):
        return app_or_config.config, app_or_config.extensions
    return app_or_config, None
