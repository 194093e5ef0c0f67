"""The Dramatiq broker chosen by ``NEWSLETTER_BROKER_URL`` and the app context for actors.

Actors are declared at import time on a stub broker; ``init_app`` moves them onto the
configured one. Queue messages carry ids only: the database says what is left to do.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name
from dramatiq.errors import QueueJoinTimeout
from dramatiq.middleware import Middleware
from flask import Flask

from newsletter.extensions import db
from newsletter.ops import logs

#: "transactional" has a worker thread of its own in every worker process (``start_workers``)
QUEUES = ("default", "delivery", "transactional")
TRANSACTIONAL_QUEUE = "transactional"

#: set while this process shuts its workers down: long jobs hand their rest back and return
stopping = threading.Event()

dramatiq.set_broker(StubBroker())


class AppContextMiddleware(Middleware):
    """Runs every message inside the app context of the app that owns the broker."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._contexts: dict[str, Any] = {}

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        context = self.app.app_context()
        context.push()
        self._contexts[message.message_id] = context
        logs.job_id.set(message.message_id)  # each log line of the job names it

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        context = self._contexts.pop(message.message_id, None)
        if context is not None:
            db.session.remove()
            context.pop()
        logs.job_id.set(None)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self.after_process_message(broker, message)


def make_broker(url: str | None) -> dramatiq.Broker:
    """The broker for ``url``: Redis, RabbitMQ, or the in-process stub when unset."""
    if not url or url.startswith("stub"):
        return StubBroker()
    if url.startswith("redis"):
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=url)
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    return RabbitmqBroker(url=url)


def init_app(app: Flask, actors: Iterable[dramatiq.Actor[Any, Any]]) -> None:
    """Make the configured broker current and move ``actors`` (``tasks.ACTORS``) onto it."""
    broker = make_broker(app.config.get("BROKER_URL"))
    broker.add_middleware(AppContextMiddleware(app))
    for queue in QUEUES:
        broker.declare_queue(queue)
    dramatiq.set_broker(broker)
    for actor in actors:
        actor.broker = broker
        broker.declare_actor(actor)
    app.extensions["dramatiq"] = broker


def is_embedded(app: Flask) -> bool:
    """True when the queue lives in this process (the stub broker)."""
    return isinstance(app.extensions["dramatiq"], StubBroker)


class WorkerGroup:
    """The workers of one process: ``bulk`` takes every queue but "transactional", and one
    more thread takes only "transactional", so a transactional message never waits in line
    behind long bulk batches (neither in the queue nor in a worker's prefetched messages)."""

    def __init__(self, broker: dramatiq.Broker, *, threads: int, worker_timeout: int) -> None:
        others = set(broker.get_declared_queues()) - {TRANSACTIONAL_QUEUE}
        self.bulk = dramatiq.Worker(
            broker, queues=others, worker_threads=threads, worker_timeout=worker_timeout
        )
        self.transactional = dramatiq.Worker(
            broker, queues={TRANSACTIONAL_QUEUE}, worker_threads=1, worker_timeout=worker_timeout
        )

    @property
    def workers(self) -> list[Any]:
        """Every worker thread of the group."""
        return [*self.bulk.workers, *self.transactional.workers]

    def start(self) -> None:
        # Each dramatiq.Worker adds its own bookkeeping middleware to the broker, which then
        # warns about a second one of the type; two workers on one broker are meant here.
        logging.getLogger(f"dramatiq.broker.{type(self.bulk.broker).__name__}").addFilter(
            _same_middleware_twice
        )
        self.transactional.start()
        self.bulk.start()

    def join(self) -> None:
        """Wait until both have no work in progress (tests)."""
        self.transactional.join()
        self.bulk.join()
        self.transactional.join()

    def stop(self, timeout: int = 600_000) -> None:
        try:
            self.bulk.stop(timeout=timeout)
        finally:
            self.transactional.stop(timeout=timeout)


def _same_middleware_twice(record: logging.LogRecord) -> bool:
    """False (drop it) for the broker's warning about a second worker's middleware."""
    return not str(record.msg).startswith("You're adding a middleware of the same type twice")


def start_workers(
    app: Flask, threads: int | None = None, *, worker_timeout: int = 1000
) -> WorkerGroup:
    """Start this process's worker threads on the app's broker: ``threads`` (default
    ``WORKER_THREADS``) for bulk work and one for transactional mail."""
    group = WorkerGroup(
        app.extensions["dramatiq"],
        threads=threads or int(app.config["WORKER_THREADS"]),
        worker_timeout=worker_timeout,
    )
    group.start()
    return group


def start_worker_threads(app: Flask, threads: int | None = None) -> WorkerGroup:
    """Start Dramatiq worker threads in this process (the embedded default and tests)."""
    return start_workers(app, threads, worker_timeout=100)


def stop_worker(worker: dramatiq.Worker | WorkerGroup, timeout_ms: int = 30_000) -> None:
    """Stop worker threads for good: running batches stop between two messages."""
    stopping.set()
    try:
        worker.stop(timeout=timeout_ms)
    finally:
        stopping.clear()


def run_queued_here(app: Flask, timeout_ms: int = 60_000) -> bool:
    """On the embedded queue, run the jobs this process queued before it exits: they live
    in its memory and would end with it (a command's confirmation mails, say). Whether
    all were done within ``timeout_ms`` per queue; a mail still waiting for a retry then
    has its row in the ledger, which ``newsletter run`` resumes. Elsewhere: nothing to do.
    """
    broker = app.extensions["dramatiq"]
    if not isinstance(broker, StubBroker):
        return True
    worker = start_worker_threads(app)
    try:
        # A job may queue another (a confirmation queues its message): twice round.
        for _ in range(2):
            for queue in QUEUES:
                broker.join(queue, timeout=timeout_ms, fail_fast=False)
            worker.join()
        return not any(
            broker.queues[name].unfinished_tasks
            for queue in QUEUES for name in (queue, dq_name(queue))
        )
    except QueueJoinTimeout:
        return False
    finally:
        stop_worker(worker)
