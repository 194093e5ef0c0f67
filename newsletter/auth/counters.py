"""Short-lived counters and one-time claims that every web process must see alike.

The second factor needs two of them: a TOTP code claimed once (so it cannot log in twice)
and a count of tries (so codes cannot be guessed). They live in Redis when one is
configured (``NEWSLETTER_REDIS_URL``, else the broker's), like the delivery rate limits; on
the embedded default, with one web process, in that process's memory.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from flask import current_app

from newsletter.delivery.relays.limits import redis_client, redis_url


class Counters(Protocol):
    def claim(self, key: str, ttl: int) -> bool:
        """True the first time ``key`` is claimed within ``ttl`` seconds, False after."""

    def hit(self, key: str, ttl: int) -> int:
        """Count one more event under ``key``; the count since the first one (it expires
        ``ttl`` seconds after that first one)."""

    def reset(self, key: str) -> None:
        """Forget ``key``."""


class MemoryCounters:
    """For one process: a dict of (value, expiry) behind a lock."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def _live(self, key: str, now: float) -> tuple[int, float] | None:
        entry = self._values.get(key)
        if entry is not None and entry[1] <= now:
            del self._values[key]
            return None
        return entry

    def _sweep(self, now: float) -> None:
        # Keys are per user and short-lived; sweeping on writes keeps the dict small.
        if len(self._values) > 10_000:
            for key in [key for key, (_, expiry) in self._values.items() if expiry <= now]:
                del self._values[key]

    def claim(self, key: str, ttl: int) -> bool:
        now = time.monotonic()
        with self._lock:
            self._sweep(now)
            if self._live(key, now) is not None:
                return False
            self._values[key] = (1, now + ttl)
            return True

    def hit(self, key: str, ttl: int) -> int:
        now = time.monotonic()
        with self._lock:
            self._sweep(now)
            entry = self._live(key, now)
            value, expiry = entry if entry is not None else (0, now + ttl)
            self._values[key] = (value + 1, expiry)
            return value + 1

    def reset(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)


class RedisCounters:
    """Shared by every process: ``SET NX EX`` for claims and to open a count's window."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    def claim(self, key: str, ttl: int) -> bool:
        return bool(self._client.set(f"{self._prefix}:{key}", 1, nx=True, ex=ttl))

    def hit(self, key: str, ttl: int) -> int:
        name = f"{self._prefix}:{key}"
        pipe = self._client.pipeline()  # MULTI/EXEC: both or neither
        pipe.set(name, 0, nx=True, ex=ttl)  # the window opens at the first event; INCR keeps it
        pipe.incr(name)
        _, value = pipe.execute()
        return int(value)

    def reset(self, key: str) -> None:
        self._client.delete(f"{self._prefix}:{key}")


def counters() -> Counters:
    """The app's counters (made on first use, then kept on the app)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    store: Counters | None = app.extensions.get("newsletter_counters")
    if store is None:
        url = redis_url(app.config)
        if url:
            prefix = f"{app.config.get('REDIS_PREFIX') or 'newsletter'}:auth"
            store = RedisCounters(redis_client(url), prefix)
        else:
            store = MemoryCounters()
        app.extensions["newsletter_counters"] = store
    return store
