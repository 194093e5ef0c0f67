"""Login throttling: per account and per client address, with backoff, in shared storage.

Flask-Limiter already caps login attempts per client address and minute; that alone lets a
botnet try one password per address against one account forever. Here failures are counted
per account (the address typed, whether or not an account has it, so the answer never tells
which exist) and per client address. Past a number of free failures, each further one
doubles the wait before the next try is even checked, up to a cap; a success clears the
account's count (never the client's: one good account must not reset a guesser's count).

The counts live in Redis when one is configured (``NEWSLETTER_REDIS_URL``, or the broker's),
so every web process shares them; otherwise in this process, with a warning at start-up
when several processes would each keep their own.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from flask import current_app
from flask.sansio.app import App

from newsletter.delivery.relays.limits import redis_client, redis_url

log = logging.getLogger(__name__)

EXTENSION_KEY = "newsletter_login_throttle"


@dataclass(frozen=True)
class Backoff:
    """``free`` failures cost nothing; the next waits ``first`` seconds, each further one
    twice as long, up to ``cap``; a count is forgotten ``forget`` seconds after its last
    failure."""

    free: int
    first: float
    cap: float
    forget: float

    def wait_after(self, failures: int) -> float:
        """Seconds to wait after the last of ``failures`` failures."""
        if failures < self.free:
            return 0.0
        return float(min(self.cap, self.first * 2 ** (failures - self.free)))


#: per account: five tries, then 2 s, 4 s, 8 s … up to 15 minutes
ACCOUNT = Backoff(free=5, first=2, cap=15 * 60, forget=24 * 3600)
#: per client address: more room (offices share an address), the same backoff after it
ADDRESS = Backoff(free=20, first=2, cap=15 * 60, forget=24 * 3600)


class Store(Protocol):
    """Where the counts live. ``now`` is the throttle's clock; Redis keeps time by itself."""

    def get(self, key: str, now: float) -> tuple[int, float]:
        """``(failures, time of the last one)``; ``(0, 0.0)`` when none."""
        ...

    def add(self, key: str, now: float, ttl: float) -> None:
        """Count one more failure at ``now``; forget the key ``ttl`` seconds later."""
        ...

    def clear(self, key: str) -> None: ...

    def claim(self, key: str, now: float, seconds: float) -> bool:
        """True for the first caller in ``seconds`` (a cool-down), False until then."""
        ...


class MemoryStore:
    """The counts in this process (the embedded default: one process)."""

    #: beyond this many keys, forgotten ones are dropped, then the oldest (guessers choose
    #: the keys, so the dictionary must not grow without bound)
    MAX_KEYS = 50_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, tuple[int, float, float]] = {}  # key -> count, last, expiry
        self._claims: dict[str, float] = {}  # key -> until

    def get(self, key: str, now: float) -> tuple[int, float]:
        with self._lock:
            count, last, expiry = self._failures.get(key, (0, 0.0, 0.0))
            if expiry <= now:
                return 0, 0.0
            return count, last

    def add(self, key: str, now: float, ttl: float) -> None:
        with self._lock:
            count, _, expiry = self._failures.get(key, (0, 0.0, 0.0))
            if expiry <= now:
                count = 0
            self._failures[key] = (count + 1, now, now + ttl)
            if len(self._failures) > self.MAX_KEYS:
                self._prune(now)

    def clear(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def claim(self, key: str, now: float, seconds: float) -> bool:
        with self._lock:
            if self._claims.get(key, 0.0) > now:
                return False
            if len(self._claims) > self.MAX_KEYS:
                self._claims = {k: v for k, v in self._claims.items() if v > now}
            self._claims[key] = now + seconds
            return True

    def _prune(self, now: float) -> None:
        live = {k: v for k, v in self._failures.items() if v[2] > now}
        if len(live) > self.MAX_KEYS:
            newest = sorted(live.items(), key=lambda item: item[1][1])[len(live) // 2 :]
            live = dict(newest)
        self._failures = live


class RedisStore:
    """The counts in Redis, shared by every process on every host."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    def get(self, key: str, now: float) -> tuple[int, float]:
        count, last = self.client.hmget(self._key(key), "failures", "last")
        return (int(count), float(last)) if count is not None else (0, 0.0)

    def add(self, key: str, now: float, ttl: float) -> None:
        name = self._key(key)
        pipe = self.client.pipeline(transaction=True)
        pipe.hincrby(name, "failures", 1)
        pipe.hset(name, "last", repr(now))
        pipe.expire(name, max(1, int(ttl)))
        pipe.execute()

    def clear(self, key: str) -> None:
        self.client.delete(self._key(key))

    def claim(self, key: str, now: float, seconds: float) -> bool:
        return bool(self.client.set(self._key(key), "1", nx=True, px=max(1, int(seconds * 1000))))


def _digest(text: str) -> str:
    # Addresses typed at the login form are kept only as digests, in memory or Redis.
    return hashlib.sha256(text.strip().lower().encode("utf-8")).hexdigest()[:32]


class LoginThrottle:
    """Counts failed logins per account and per client address, and says how long to wait."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def _keys(self, account: str, client: str) -> list[tuple[str, Backoff]]:
        return [(f"account:{_digest(account)}", ACCOUNT), (f"client:{client}", ADDRESS)]

    def wait(self, account: str, client: str) -> float:
        """Seconds before ``account`` may be tried again from ``client`` (0: now)."""
        now = self.clock()
        waits = [0.0]
        for key, backoff in self._keys(account, client):
            failures, last = self.store.get(key, now)
            waits.append(last + backoff.wait_after(failures) - now)
        return max(waits)

    def failed(self, account: str, client: str) -> None:
        """Count a failed try of ``account`` from ``client``."""
        now = self.clock()
        for key, backoff in self._keys(account, client):
            self.store.add(key, now, backoff.forget)

    def succeeded(self, account: str) -> None:
        """The account's password was right: its count starts again."""
        self.store.clear(f"account:{_digest(account)}")

    def cool_down(self, purpose: str, account: str, seconds: float) -> bool:
        """True at most once per ``seconds`` for this purpose and account (e.g. one
        password-reset mail per address every few minutes)."""
        return self.store.claim(f"{purpose}:{_digest(account)}", self.clock(), seconds)


def throttle() -> LoginThrottle:
    """The current app's throttle."""
    found = current_app.extensions.get(EXTENSION_KEY)
    if found is None:
        found = init_app(current_app)
    return found


def init_app(app: App) -> LoginThrottle:
    """Make the app's throttle: on Redis when one is configured, else in this process (with
    a warning when several processes would each count on their own)."""
    url = redis_url(app.config)
    store: Store
    if url:
        store = RedisStore(redis_client(url), prefix=f"{app.config['REDIS_PREFIX']}:login")
    else:
        store = MemoryStore()
        warning = per_process_warning(app.config)
        if warning:
            log.warning(warning)
    found = app.extensions[EXTENSION_KEY] = LoginThrottle(store)
    return found


def per_process_warning(
    config: Mapping[str, Any], modules: Mapping[str, Any] = sys.modules
) -> str | None:
    """The start-up warning for counts kept in this process when there are likely several
    processes: under gunicorn, or beside workers on a broker of their own."""
    broker = str(config.get("BROKER_URL") or "")
    if "gunicorn" in modules or (broker and not broker.startswith("stub")):
        return (
            "login throttling is counted per process: each gunicorn worker or `newsletter "
            "worker` process keeps its own counts; set NEWSLETTER_REDIS_URL to share them"
        )
    return None
