"""Each test's app keeps its login-throttle counts and cool-downs apart in Redis.

On the PostgreSQL + Redis run every app of a session shares one Redis database; without a
prefix of its own, the failed logins of one test would throttle the logins of the next.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The suite's settings, with a Redis key prefix for this test alone."""
    prefix = f"nl-test-{uuid.uuid4().hex[:12]}"
    app_config["REDIS_PREFIX"] = prefix
    yield app_config
    broker = app_config.get("BROKER_URL") or ""
    if broker.startswith("redis"):
        import redis

        client = redis.Redis.from_url(broker)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()
