"""The replay guard of the webhooks: a request id (Mailgun's token, SNS's MessageId,
SendGrid's event id) is taken once within its window, across every web process.

The ids live in the shared counters (``auth/counters.py``): Redis when one is configured,
else this process's memory (the embedded default runs one web process).
"""

from __future__ import annotations

import hashlib

from newsletter.auth.counters import counters

_PREFIX = "bounce-hook"


def key_for(provider: str, request_id: str) -> str:
    """The guard's key for a provider's request id (hashed: ids may be long)."""
    digest = hashlib.sha256(request_id.encode("utf-8", "replace")).hexdigest()[:32]
    return f"{_PREFIX}:{provider}:{digest}"


def first_time(key: str, ttl: int) -> bool:
    """True the first time ``key`` is seen within ``ttl`` seconds (and claims it)."""
    return counters().claim(key, max(1, ttl))


def forget(key: str) -> None:
    """Give a claim back (its request was not handled after all)."""
    counters().reset(key)
