"""A send through RabbitMQ: worker processes, readiness and metrics on a real broker.

Runs in the PostgreSQL pass (the workers are separate processes on one database); each
test gets a RabbitMQ virtual host of its own, so runs side by side never share queues.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from newsletter.delivery.send import dispatcher
from newsletter.extensions import db
from tests.delivery.helpers import make_sendable_issue
from tests.delivery.processes import logs_text, newsletter_env, start_send, stop_all, wait_until
from tests.factories import make_list, make_subscriber
from tests.helpers import TEST_DATABASE_URL, require_service
from tests.smtp import CapturingSMTPServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not TEST_DATABASE_URL, reason="runs in the PostgreSQL pass"),
]

RABBITMQ = os.environ.get("NEWSLETTER_TEST_RABBITMQ", "guest:guest@127.0.0.1:5672")


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def vhost() -> Iterator[str]:
    """A virtual host of this test's own on the local RabbitMQ."""
    name = f"nl_test_{secrets.token_hex(4)}"
    try:
        _rabbitmqctl("add_vhost", name)
        _rabbitmqctl("set_permissions", "-p", name, RABBITMQ.split(":")[0], ".*", ".*", ".*")
    except (OSError, subprocess.SubprocessError) as error:
        require_service("RabbitMQ", f"rabbitmqctl add_vhost: {error}")
    yield name
    _rabbitmqctl("delete_vhost", name)


@pytest.fixture
def app_config(app_config: dict[str, Any], vhost: str) -> dict[str, Any]:
    return {**app_config, "BROKER_URL": f"amqp://{RABBITMQ}/{vhost}"}


def test_two_worker_processes_on_rabbitmq_mail_everyone_once_and_report_it(
    app: Flask, mailbox: CapturingSMTPServer, tmp_path: Path
) -> None:
    news = make_list("news")
    emails = [f"reader{n:02}@example.com" for n in range(40)]
    for email in emails:
        make_subscriber(email, lists=(news,))
    issue_id = make_sendable_issue(news).id
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 200 and ready.json["checks"]["broker"] == "ok"

    env = newsletter_env(app, BATCH_SIZE=5)
    processes = start_send(app, issue_id, env, tmp_path, workers=2)
    try:
        def sent() -> bool:
            db.session.remove()
            return dispatcher.progress(issue_id)["status"] == "sent"

        wait_until(sent, timeout=90, what="the send to finish")
        metrics = app.test_client().get("/metrics").text
    finally:
        statuses = stop_all(processes)
    assert set(statuses) <= {0}, logs_text(tmp_path)

    counts = Counter(r.lower() for m in mailbox.messages for r in m.recipients)
    assert sorted(counts) == emails and set(counts.values()) == {1}
    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
    }
    assert values[("newsletter_queue_depth", (("queue", "delivery"),))] == 0
    assert values[("newsletter_workers_alive", ())] >= 2  # consumers of the queue
