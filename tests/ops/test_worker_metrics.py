"""``newsletter worker`` processes serve their metrics, merged, on one port."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from newsletter.broker import is_embedded
from newsletter.delivery.send import dispatcher
from tests.delivery.helpers import make_audience, make_sendable_issue
from tests.delivery.processes import logs_text, newsletter_env, start, stop_all, wait_until
from tests.helpers import free_port
from tests.smtp import CapturingSMTPServer


def samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_two_worker_processes_report_their_replies_and_dramatiqs_figures_on_one_port(
    app: Flask, mailbox: CapturingSMTPServer, tmp_path: Path
) -> None:
    if is_embedded(app):
        pytest.skip("separate worker processes need a broker: runs in the second pass")
    audience = make_audience()
    issue_id = make_sendable_issue(audience.news, audience.events).id
    port = free_port()
    log = tmp_path / "worker.log"
    env = newsletter_env(app, WORKER_METRICS_PORT=port)
    worker = start(["worker", "--processes", "2"], env, log)
    try:
        wait_until(
            lambda: log.read_text().count("consuming with") == 2 or worker.poll() is not None,
            timeout=60, what="both worker processes to consume",
        )
        assert worker.poll() is None, log.read_text()
        dispatcher.request_send(issue_id)
        replies = ("newsletter_smtp_replies_total",
                   (("relay", f"127.0.0.1:{mailbox.port}"), ("reply_class", "2xx")))
        figures: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

        def batches_done() -> float:
            return sum(value for (name, labels), value in figures.items()
                       if name == "dramatiq_messages_total"
                       and ("actor_name", "send_batch") in labels)

        def counted() -> bool:
            try:
                figures.update(samples(port))
            except OSError:  # the server is starting
                return False
            return figures.get(replies, 0) == len(audience.emails) and batches_done() >= 1

        wait_until(counted, timeout=60, what="every reply and the batch to be counted")
        assert figures[replies] == len(audience.emails)  # from both processes, merged
    finally:
        stop_all([worker])
    assert "Traceback" not in logs_text(tmp_path)
