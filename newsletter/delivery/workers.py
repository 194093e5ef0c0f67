"""Dramatiq worker processes for ``newsletter worker``: start, watch, stop cleanly.

Each process builds its own app from the environment (``create_app()``) and runs its
Dramatiq worker threads, one of them only for the "transactional" queue. SIGTERM or SIGINT
stops every process: running batches hand their rest back between two messages, so nothing
waits for a lease to run out. Each process keeps a heartbeat in the database
(``delivery.send.heartbeat``): when one dies without stopping (SIGKILL, a host cut off), the
others take its claims over within about 25 s instead of the lease's 300.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from datetime import timedelta
from types import FrameType

from flask import Flask

from newsletter import audit
from newsletter.audience import import_jobs
from newsletter.broker import start_workers, stop_worker
from newsletter.content import feeds
from newsletter.delivery.bounces import poller as bounce_poller
from newsletter.delivery.control import actions as control
from newsletter.delivery.send import heartbeat
from newsletter.delivery.send.dispatcher import (
    recover_issue,
    recover_unfinished,
    recover_unstarted,
)
from newsletter.delivery.send.stalls import STALL_SECONDS, StallWatch
from newsletter.delivery.webhooks import service as webhooks
from newsletter.extensions import FACTORY_KEY, db
from newsletter.ops import logs, worker_metrics

log = logging.getLogger(__name__)

#: how long running messages may take to stop before the process exits anyway
STOP_TIMEOUT_MS = 30_000
#: seconds between two sweeps for sends started by another process (``SWEEP_SECONDS``)
SWEEP_SECONDS = 10


def run_workers(app: Flask, *, processes: int, threads: int | None) -> int:
    """Consume the app's broker with ``processes`` processes of ``threads`` threads each
    until SIGTERM or SIGINT; return the exit status."""
    folder = server = None
    if worker_metrics.wanted(app):
        folder = worker_metrics.prepare_folder()  # before any process counts anything
        server = worker_metrics.serve(app)
    try:
        return _run_processes(app, processes=processes, threads=threads)
    finally:
        if server is not None:
            server.shutdown()
        if folder is not None:
            worker_metrics.remove_folder(folder)


def _run_processes(app: Flask, *, processes: int, threads: int | None) -> int:
    if processes <= 1:
        return serve(app, threads)
    # spawn, not fork: a forked child would share the parent's database connections.
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(
            target=_child_main,
            args=(app.extensions[FACTORY_KEY], threads),
            name=f"newsletter-worker-{n}",
        )
        for n in range(1, processes + 1)
    ]
    stop = _stop_on_signals()
    for child in children:
        child.start()
    status = 0
    while not stop.wait(0.5):
        dead = [child for child in children if not child.is_alive()]
        if dead:
            log.error("worker %s exited with %s; stopping", dead[0].name, dead[0].exitcode)
            status = 1
            break
    for child in children:
        if child.is_alive():
            child.terminate()  # SIGTERM: the child stops its threads cleanly
    for child in children:
        child.join(STOP_TIMEOUT_MS / 1000 + 5)
        if child.is_alive():
            child.kill()
            child.join()
    return status


def serve(app: Flask, threads: int | None) -> int:
    """Run one Dramatiq worker in this process until SIGTERM or SIGINT."""
    stop = _stop_on_signals()
    if worker_metrics.wanted(app):
        worker_metrics.instrument(app.extensions["dramatiq"])
    # Registered before the first claim: every claim names this process's heartbeat.
    beat = heartbeat.start(app, requeue_handed_over)
    # Bulk threads plus one thread of its own for the "transactional" queue.
    worker = start_workers(app, threads, worker_timeout=1000)
    threads_now = len(worker.bulk.workers)
    log.info("worker %s: %s threads and 1 transactional", os.getpid(), threads_now)
    print(f"worker {os.getpid()} consuming with {threads_now} threads (+1 transactional)",
          flush=True)
    # Each process sweeps too: scheduled issues start even with no web server running.
    sweeper = start_sweeper(app, unstarted=False)
    while not stop.wait(0.5):
        pass
    print(f"worker {os.getpid()} stopping", flush=True)
    sweeper.stop()
    stop_worker(worker, STOP_TIMEOUT_MS)
    beat.stop()  # after the batches gave their rows back
    return 0


def requeue_handed_over(handed: heartbeat.HandOver) -> None:
    """Queue again the work of rows a dead worker held. A dead worker's queue messages
    (prefetched batches too) may stay with it until the broker gives up on its connection:
    then every unfinished send is queued again (claims decide who sends)."""
    if handed.dead_workers:
        recover_unfinished()
        return
    for issue_id in handed.issue_ids:
        recover_issue(issue_id)


class Sweeper(threading.Thread):
    """Beside the workers: now and then, start scheduled issues that are due, tidy cancelled
    ones and sample progress (``control.sweep``), and queue again the work of sends that
    stopped moving because the broker lost it (``stalls``); beside the embedded workers also
    start sends that another process asked for (``newsletter issues send`` writes the row,
    but its queue dies with it)."""

    def __init__(self, app: Flask, interval: float, *, unstarted: bool = True) -> None:
        super().__init__(name="newsletter-sweeper", daemon=True)
        self.app = app
        self.interval = interval
        self.unstarted = unstarted
        self._stop_event = threading.Event()
        self.stalls = StallWatch(float(app.config.get("STALL_SECONDS") or STALL_SECONDS))

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            with self.app.app_context():
                try:
                    if self.unstarted:
                        recover_unstarted(timedelta(seconds=self.interval))
                    control.sweep()  # scheduled issues: exactly once across every worker
                    self.stalls.check()  # sends whose queued jobs were lost
                    audit.purge_expired()  # audit events past NEWSLETTER_AUDIT_RETENTION_DAYS
                    import_jobs.recover_stalled()  # imports whose worker died
                    feeds.enqueue_due()  # RSS/Atom feeds due for a poll: once across workers
                    bounce_poller.enqueue_due()  # the bounce mailbox: once an interval
                    webhooks.enqueue_stalled()  # webhook messages whose job was lost
                except Exception:  # noqa: BLE001 - a failed sweep must not end the sweeper
                    log.exception("sweep failed")
                finally:
                    db.session.remove()

    def stop(self) -> None:
        self._stop_event.set()


def start_sweeper(app: Flask, *, unstarted: bool = True) -> Sweeper:
    """Start the sweep thread (``unstarted``: also the embedded queue's sweep for sends
    started in another process)."""
    sweeper = Sweeper(
        app, float(app.config.get("SWEEP_SECONDS", SWEEP_SECONDS)), unstarted=unstarted
    )
    sweeper.start()
    return sweeper


def _child_main(create_app: Callable[[], Flask], threads: int | None) -> None:
    app = create_app()
    logs.setup(app)
    raise SystemExit(serve(app, threads))


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop
