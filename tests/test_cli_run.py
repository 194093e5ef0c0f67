"""``newsletter run`` and ``newsletter worker``: start, do the work, stop cleanly."""

from __future__ import annotations

import re
import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from newsletter import create_app
from newsletter.broker import is_embedded
from newsletter.delivery.send import dispatcher
from newsletter.extensions import db
from tests.conftest import free_port
from tests.delivery.conftest import make_audience, make_sendable_issue
from tests.delivery.processes import kill_group, newsletter_env, run, start, wait_until
from tests.smtp import CapturingSMTPServer


def test_worker_refuses_to_run_without_a_shared_queue(
    app_config: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    app_config["BROKER_URL"] = None
    runner = request.getfixturevalue("runner")

    result = runner.invoke(args=["worker"])

    assert result.exit_code == 1
    assert "NEWSLETTER_BROKER_URL" in result.output
    assert "newsletter run" in result.output


@pytest.mark.parametrize(("command", "options"), [
    ("run", ["--host", "--port"]),
    ("worker", ["--processes", "--threads"]),
])
def test_run_and_worker_explain_themselves(command: str, options: list[str]) -> None:
    from click.testing import CliRunner

    from newsletter.cli import main

    result = CliRunner().invoke(main, [command, "--help"])

    assert result.exit_code == 0, result.output
    for option in options:
        assert option in result.output


@pytest.fixture
def embedded_instance(
    tmp_path: Path, mailbox: CapturingSMTPServer
) -> tuple[Flask, int, list[str]]:
    """A fresh embedded instance (SQLite, stub queue) whose schema comes from the migrations,
    with an issue left sending by a process that died (its queue died with it), and a draft
    (issue id + 1) to the news list."""
    from newsletter.schema import upgrade_database

    app = create_app({
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": None,
        "BROKER_URL": None,
        "SMTP_URL": f"smtp://127.0.0.1:{mailbox.port}",
        "BASE_URL": "https://news.example.org",
        "FROM_ADDRESS": "Example News <news@example.org>",
        "SECRET_KEY": "test-secret-key",
    })
    with app.app_context():
        upgrade_database()  # and undo Alembic's logging set-up in this test process
        audience = make_audience()
        issue_id = make_sendable_issue(audience.news, audience.events).id
        dispatcher.request_send(issue_id)
        make_sendable_issue(audience.news, subject="Next week")
        db.session.remove()
        db.engine.dispose()
    return app, issue_id, audience.emails


def test_run_migrates_serves_and_finishes_an_interrupted_send(
    embedded_instance: tuple[Flask, int, list[str]], mailbox: CapturingSMTPServer,
    tmp_path: Path,
) -> None:
    app, issue_id, emails = embedded_instance
    port = free_port()
    log = tmp_path / "run.log"

    env = newsletter_env(app, SWEEP_SECONDS=1)

    server = start(["run", "--port", str(port)], env, log)
    try:
        wait_until(lambda: "Serving on" in log.read_text(), what="the server to start")
        wait_until(lambda: _get(port, "/subscribe") == 200, what="the signup page")
        wait_until(lambda: len(mailbox.messages) >= len(emails), what="the resumed send")
        # A send asked for from another shell reaches the running server's workers.
        other = run(["issues", "send", str(issue_id + 1)], env)
        assert other.returncode == 0, other.stdout + other.stderr
        wait_until(lambda: _subjects(mailbox).count("Next week") == 3, what="the second send")
    finally:
        status = kill_group(server, signal.SIGTERM)

    output = log.read_text()
    assert status == 0, output
    assert "Resumed unfinished sends" in output
    assert re.search(r"https://news\.example\.org/admin/setup/\S+", output), output
    assert sorted(_subjects(mailbox)) == ["Next week"] * 3 + ["This week"] * len(emails)
    assert sorted(
        r for m in mailbox.messages if m.message["Subject"] == "This week" for r in m.recipients
    ) == emails
    with app.app_context():
        assert dispatcher.progress(issue_id)["status"] == "sent"
        assert dispatcher.progress(issue_id + 1)["status"] == "sent"
        db.engine.dispose()


def _subjects(mailbox: CapturingSMTPServer) -> list[str]:
    return [str(m.message["Subject"]) for m in mailbox.messages]


def test_worker_processes_send_and_stop_cleanly_on_sigterm(
    app: Flask, mailbox: CapturingSMTPServer, tmp_path: Path
) -> None:
    if is_embedded(app):
        pytest.skip("separate workers need a shared queue (run with NEWSLETTER_TEST_BROKER_URL)")
    audience = make_audience()
    issue_id = make_sendable_issue(audience.news, audience.events).id
    emails = audience.emails
    dispatcher.request_send(issue_id)
    log = tmp_path / "worker.log"

    worker = start(["worker", "--processes", "2", "--threads", "1"], newsletter_env(app), log)
    try:
        wait_until(lambda: log.read_text().count("consuming with 1 threads") == 2,
                   what="two worker processes")
        wait_until(lambda: _progress(issue_id) == "sent", what="the issue to be sent")
    finally:
        status = kill_group(worker, signal.SIGTERM)

    assert status == 0, log.read_text()
    assert log.read_text().count("stopping") == 2
    assert sorted(r for m in mailbox.messages for r in m.recipients) == emails


def _progress(issue_id: int) -> str:
    db.session.remove()
    return str(dispatcher.progress(issue_id)["status"])


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except OSError:
        return 0
