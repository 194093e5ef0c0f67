"""Prometheus metrics: what the process did (counters) and how the installation stands
(read from the database and the broker when Prometheus scrapes).

Two kinds, because work is spread over processes and hosts:

- **Events** counted where they happen: SMTP replies by relay and class in the process that
  sent the message, sign-ups and confirmations in the web process, bounces and complaints
  by kind where the policy recorded them. Each process exposes its
  own: the web app at ``/metrics`` (on the embedded default the worker threads live in it,
  so everything is there), a ``newsletter worker`` with ``NEWSLETTER_WORKER_METRICS_PORT``
  through Dramatiq's Prometheus middleware, which adds the queues' own figures and merges
  its processes (prometheus-client's multiprocess mode).
- **State** read at scrape time, the same from any process: messages sent, failed and
  pending (the issues' maintained counters, never ``count(*)`` over the ledger), claims
  under lease, the recent send rate, queue depth, live workers and import progress.

Counters are created on first use, not at import: in a Dramatiq worker the middleware turns
multiprocess mode on at process boot, and a counter made before that would not be shared.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flask import current_app
from sqlalchemy import func, select

from newsletter.content.models import Issue, IssueStatus
from newsletter.delivery.models import Delivery, DeliveryStatus, ProgressSample, WorkerHeartbeat
from newsletter.delivery.send.heartbeat import HEARTBEAT_TIMEOUT_SECONDS
from newsletter.extensions import db
from newsletter.models import utcnow

if TYPE_CHECKING:
    from prometheus_client import Counter
    from prometheus_client.core import Metric

# prometheus-client is imported inside the functions: it decides at import whether values
# live in this process or in the multiprocess folder, and a worker sets that folder first.
_lock = threading.Lock()
_counters: dict[str, Counter] = {}

#: name → (help, labels) of every event counter
EVENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "newsletter_smtp_replies": (
        "Replies of the relays to messages, by relay and reply class (2xx sent, 4xx deferred, "
        "5xx failed).",
        ("relay", "reply_class"),
    ),
    "newsletter_signups": ("Sign-ups received through the form and the API.", ("via",)),
    "newsletter_confirmations": ("Subscriptions confirmed by their owners.", ()),
    "newsletter_bounces": (
        "Bounces and complaints recorded for subscribers, by kind (hard, soft, complaint) "
        "and the path they came in by.",
        ("kind", "source"),
    ),
}


def count(name: str, **labels: str) -> None:
    """Add one to the event counter ``name`` (see ``EVENTS``) with these label values.

    Cheap enough for the send path: a dictionary look-up and a locked add.
    """
    counter = _counters.get(name)
    if counter is None:
        counter = _make_counter(name)
    (counter.labels(**labels) if labels else counter).inc()


def _make_counter(name: str) -> Counter:
    from prometheus_client import Counter

    with _lock:
        if name not in _counters:
            help_text, labels = EVENTS[name]
            _counters[name] = Counter(name, help_text, labels)  # the default registry
        return _counters[name]


def reply_class(code: int) -> str:
    """``2xx``, ``4xx`` or ``5xx`` for an SMTP reply code (anything else: ``other``)."""
    return f"{code // 100}xx" if 200 <= code < 600 else "other"


def exposition() -> bytes:
    """The text Prometheus reads: this process's events, then the installation's state."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

    state = CollectorRegistry(auto_describe=False)
    state.register(_StateCollector())
    return generate_latest(REGISTRY) + generate_latest(state)


class _StateCollector:
    """The installation's state, read when scraped (in an app context)."""

    def collect(self) -> Iterator[Metric]:
        yield from _messages()
        yield from _issues_by_status()
        yield _leased_claims()
        yield from _worker_heartbeats()
        yield _send_rate()
        yield from _queues()


def _messages() -> Iterator[Metric]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    total, sent, failed = db.session.execute(
        select(
            func.coalesce(func.sum(Issue.total_count), 0),
            func.coalesce(func.sum(Issue.sent_count), 0),
            func.coalesce(func.sum(Issue.failed_count), 0),
        )
    ).one()
    messages = CounterMetricFamily(
        "newsletter_messages", "Messages of issues by final outcome.", labels=["outcome"]
    )
    messages.add_metric(["sent"], float(sent))
    messages.add_metric(["failed"], float(failed))
    yield messages
    yield GaugeMetricFamily(
        "newsletter_messages_pending", "Messages of issues not sent or failed yet.",
        value=float(max(0, total - sent - failed)),
    )


def _issues_by_status() -> Iterator[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    rows = dict(db.session.execute(select(Issue.status, func.count()).group_by(Issue.status)).all())
    gauge = GaugeMetricFamily("newsletter_issues", "Issues by status.", labels=["status"])
    for status in IssueStatus:
        gauge.add_metric([status.value], float(rows.get(status, 0)))
    yield gauge


def _leased_claims() -> Metric:
    from prometheus_client.core import GaugeMetricFamily

    # Served by the claim index: pending rows of the issues being sent, under a lease now.
    leased = db.session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.status == DeliveryStatus.PENDING, Delivery.lease_until > utcnow())
    )
    return GaugeMetricFamily(
        "newsletter_claims_leased", "Ledger rows claimed by a worker under a lease now.",
        value=float(leased or 0),
    )


def _worker_heartbeats() -> Iterator[Metric]:
    """Worker processes whose heartbeat in the database is recent (``delivery.send.heartbeat``)."""
    from prometheus_client.core import GaugeMetricFamily

    timeout = current_app.config.get("HEARTBEAT_TIMEOUT_SECONDS") or HEARTBEAT_TIMEOUT_SECONDS
    cutoff = utcnow() - timedelta(seconds=float(timeout))
    live = db.session.scalar(
        select(func.count()).select_from(WorkerHeartbeat).where(WorkerHeartbeat.last_seen >= cutoff)
    )
    yield GaugeMetricFamily(
        "newsletter_worker_heartbeats",
        "Worker processes whose heartbeat reached the database within the timeout.",
        value=float(live or 0),
    )


def _send_rate() -> Metric:
    """Messages a second over the last minute, from the progress samples of the sends."""
    from prometheus_client.core import GaugeMetricFamily

    since = utcnow() - timedelta(seconds=60)
    rows = db.session.execute(
        select(
            ProgressSample.issue_id,
            func.min(ProgressSample.sent),
            func.max(ProgressSample.sent),
            func.min(ProgressSample.taken_at),
            func.max(ProgressSample.taken_at),
        )
        .where(ProgressSample.taken_at >= since)
        .group_by(ProgressSample.issue_id)
    ).all()
    rate = 0.0
    for _, low, high, first, last in rows:
        seconds = (last - first).total_seconds()
        if seconds > 0:
            rate += (high - low) / seconds
    return GaugeMetricFamily(
        "newsletter_send_rate", "Messages sent a second, over the last minute.", value=rate
    )


def _queues() -> Iterator[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    broker: Any = current_app.extensions["dramatiq"]
    depth = GaugeMetricFamily(
        "newsletter_queue_depth", "Messages waiting in each queue.", labels=["queue"]
    )
    for queue in sorted(broker.get_declared_queues()):
        waiting = _queue_depth(broker, queue)
        if waiting is not None:
            depth.add_metric([queue], float(waiting))
    yield depth
    workers = _live_workers(broker)
    if workers is not None:
        yield GaugeMetricFamily(
            "newsletter_workers_alive",
            "Worker processes whose heartbeat is recent (Redis) or consumers (RabbitMQ).",
            value=float(workers),
        )


def _queue_depth(broker: Any, queue: str) -> int | None:
    try:
        if hasattr(broker, "client"):  # Redis: the queue is a list under the namespace
            return int(broker.client.llen(f"{broker.namespace}:{queue}"))
        if hasattr(broker, "get_queue_message_counts"):  # RabbitMQ
            ready, delayed, dead = broker.get_queue_message_counts(queue)
            return int(ready + delayed)
        if hasattr(broker, "queues"):  # the stub broker
            return int(broker.queues[queue].qsize())
    except Exception:  # noqa: BLE001 - an unreachable broker shows as a missing figure
        return None
    return None


def _live_workers(broker: Any) -> int | None:
    """Redis keeps each consumer's heartbeat; RabbitMQ counts the consumers of a queue."""
    try:
        if hasattr(broker, "client"):
            cutoff = (utcnow().timestamp() - 60) * 1000
            key = f"{broker.namespace}:__heartbeats__"
            return int(broker.client.zcount(key, cutoff, "+inf"))
        if hasattr(broker, "channel"):
            queue = sorted(broker.get_declared_queues())[0]
            return int(broker.channel.queue_declare(queue, passive=True).method.consumer_count)
    except Exception:  # noqa: BLE001
        return None
    return None
