"""The Dramatiq broker chosen by ``NEWSLETTER_BROKER_URL`` and the app context for actors.

Actors are declared at import time on a stub broker; ``init_app`` moves them onto the
configured one. Queue messages carry ids only: the database says what is left to do.
"""

from __future__ import annotations

import threading
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware
from flask import Flask

QUEUES = ("default", "delivery")

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

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        from newsletter.extensions import db

        context = self._contexts.pop(message.message_id, None)
        if context is not None:
            db.session.remove()
            context.pop()

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


def init_app(app: Flask) -> None:
    """Make the configured broker current and move every declared actor onto it."""
    from newsletter import tasks

    broker = make_broker(app.config.get("BROKER_URL"))
    broker.add_middleware(AppContextMiddleware(app))
    for queue in QUEUES:
        broker.declare_queue(queue)
    dramatiq.set_broker(broker)
    for actor in tasks.ACTORS:
        actor.broker = broker
        broker.declare_actor(actor)
    app.extensions["dramatiq"] = broker


def is_embedded(app: Flask) -> bool:
    """True when the queue lives in this process (the stub broker)."""
    return isinstance(app.extensions["dramatiq"], StubBroker)


def start_worker_threads(app: Flask, threads: int | None = None) -> dramatiq.Worker:
    """Start Dramatiq worker threads in this process (the embedded default and tests)."""
    worker = dramatiq.Worker(
        app.extensions["dramatiq"],
        worker_threads=threads or int(app.config["WORKER_THREADS"]),
        worker_timeout=100,
    )
    worker.start()
    return worker


def stop_worker(worker: dramatiq.Worker, timeout_ms: int = 30_000) -> None:
    """Stop worker threads for good: running batches stop between two messages."""
    stopping.set()
    try:
        worker.stop(timeout=timeout_ms)
    finally:
        stopping.clear()
