"""``newsletter run`` and ``newsletter worker``: start, do the work, stop cleanly; on a new
instance, commands need no step before them."""

from __future__ import annotations

import re
import signal
import socket
import urllib.request
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from newsletter import create_app
from newsletter.broker import is_embedded
from newsletter.delivery.send import dispatcher
from newsletter.extensions import db
from tests.delivery.helpers import make_audience, make_sendable_issue
from tests.delivery.processes import (
    instance_env,
    kill_group,
    newsletter_env,
    run,
    served_port,
    start,
    wait_until,
)
from tests.helpers import SEED_STATEMENT, free_port, sign_up
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


# Runs once, in the embedded pass (Makefile): help text, the same on every backend.
@pytest.mark.once
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


# Runs once, in the embedded pass (Makefile): an embedded instance, whatever the pass tests.
@pytest.mark.once
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
    # NEWSLETTER_BASE_URL is set: it wins over the address served.
    assert re.search(r"https://news\.example\.org/admin/setup/\S+", output), output
    assert sorted(_subjects(mailbox)) == ["Next week"] * 3 + ["This week"] * len(emails)
    assert sorted(
        r for m in mailbox.messages if m.message["Subject"] == "This week" for r in m.recipients
    ) == emails
    with app.app_context():
        assert dispatcher.progress(issue_id)["status"] == "sent"
        assert dispatcher.progress(issue_id + 1)["status"] == "sent"
        db.engine.dispose()


# Runs once, in the embedded pass (Makefile): an embedded instance, whatever the pass tests.
@pytest.mark.once
def test_run_without_a_base_url_puts_the_address_it_serves_in_every_link(
    embedded_instance: tuple[Flask, int, list[str]], mailbox: CapturingSMTPServer,
    tmp_path: Path,
) -> None:
    app, issue_id, emails = embedded_instance
    log = tmp_path / "run.log"
    env = newsletter_env(app, BASE_URL=None)

    server = start(["run", "--port", "0"], env, log)  # any free port, never 5000's
    try:
        base = f"http://127.0.0.1:{served_port(server, log)}"
        sign_up(base, "newcomer@example.com", "news")  # a confirmation from a web thread
        wait_until(lambda: len(mailbox.messages) == len(emails) + 1, what="every message")
    finally:
        kill_group(server, signal.SIGTERM)

    assert re.search(rf"^  {re.escape(base)}/admin/setup/\S+$", log.read_text(), re.M)
    (confirmation,) = mailbox.to("newcomer@example.com")
    assert f"{base}/confirm/" in _text(confirmation.message)
    for address in emails:  # the resumed send, from the worker threads
        (captured,) = mailbox.to(address)
        assert f"<{base}/unsubscribe/" in captured.message["List-Unsubscribe"]
        assert f"{base}/manage/" in _text(captured.message)
    assert not [m for m in mailbox.messages if b":5000" in m.data]


def _text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


# Runs once, in the embedded pass (Makefile): an embedded instance, whatever the pass tests.
@pytest.mark.once
def test_run_on_a_taken_port_says_so_in_one_line_before_anything_else(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run(["run", "--port", str(port)], instance_env(tmp_path / "instance"))

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"newsletter: cannot listen on 127.0.0.1:{port}: Address already in use; "
        "stop the program using it or choose another --port"
    ]


# Runs once, in the embedded pass (Makefile): an embedded instance, whatever the pass tests.
@pytest.mark.once
@pytest.mark.parametrize(("args", "stdin", "says", "warns"), [
    (["users", "create", "ada@example.org", "--password-stdin"], "a long enough password\n",
     ["created admin ada@example.org"], None),
    (["lists", "create", "news", "--name", "News"], None, ["Created list news"], None),
    (["statements", "import", str(SEED_STATEMENT)], None,
     ["created  post-election-mobilization", "1 created"],
     "relative links and images are left out of mail"),
], ids=["users create", "lists create", "statements import"])
def test_a_command_on_a_new_embedded_instance_brings_the_schema_up_to_date_first(
    tmp_path: Path, args: list[str], stdin: str | None, says: list[str], warns: str | None,
) -> None:
    env = instance_env(tmp_path / "instance")

    result = run(args, env, input=stdin)

    assert result.returncode == 0, result.stdout + result.stderr
    # Only the command's own answer: no line per migration, no warning about SQLite's limits.
    lines = result.stdout.splitlines()
    assert all(line.startswith(start) for line, start in zip(lines, says, strict=True)), \
        result.stdout
    if warns is None:
        assert result.stderr == ""
    else:  # the command's own warning about what it imported, and nothing else
        assert len(result.stderr.splitlines()) == 1 and warns in result.stderr, result.stderr
    assert run(["lists", "list"], env).returncode == 0


def test_run_on_a_new_instance_says_in_one_line_that_it_migrated(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    server = start(["run", "--port", "0"], instance_env(tmp_path / "instance"), log)
    try:
        served_port(server, log)
    finally:
        assert kill_group(server, signal.SIGTERM) == 0, log.read_text()

    output = log.read_text()
    assert re.search(r"^Database schema brought up to date \(revision \d{4}\)\.$", output,
                     re.MULTILINE), output
    assert "alembic" not in output and "Warning" not in output, output


def test_a_command_on_an_unmigrated_postgresql_database_says_to_run_db_upgrade(
    tmp_path: Path, empty_database_url: str,
) -> None:
    if empty_database_url.startswith("sqlite"):
        pytest.skip("a PostgreSQL case: runs on the PostgreSQL pass")
    env = instance_env(tmp_path / "instance", DATABASE_URL=empty_database_url)

    refused = run(["lists", "create", "news", "--name", "News"], env)
    upgraded = run(["db", "upgrade"], env)
    created = run(["lists", "create", "news", "--name", "News"], env)

    assert refused.returncode == 2
    assert refused.stdout == ""
    assert refused.stderr.splitlines() == [
        "newsletter: configuration error: NEWSLETTER_DATABASE_URL: "
        "the database has no tables yet; run `newsletter db upgrade`"
    ]
    assert upgraded.returncode == 0, upgraded.stderr
    assert created.returncode == 0, created.stderr
    assert "Created list news" in created.stdout


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
