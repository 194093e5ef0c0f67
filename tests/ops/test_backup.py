"""Back up mid-life, restore into a fresh database: the same installation, and an
interrupted send finishes with nobody mailed twice (docs/operations.md says how)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from newsletter import create_app
from newsletter.audience.models import Subscriber
from newsletter.content.models import Issue
from newsletter.delivery.models import Delivery
from newsletter.delivery.send import dispatcher
from newsletter.extensions import db
from newsletter.mail import dkim
from tests.delivery.helpers import FaultySMTPServer, make_sendable_issue
from tests.delivery.processes import (
    kill_group,
    logs_text,
    newsletter_env,
    start_send,
    stop_all,
    wait_until,
)
from tests.factories import make_list, make_subscriber

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("keep_logging")]


@pytest.fixture
def app_config(
    app_config: dict[str, Any], empty_database_urls: Callable[[], str]
) -> dict[str, Any]:
    """The suite's settings on a database of this test's own: a backup takes all of it."""
    return {**app_config, "DATABASE_URL": empty_database_urls()}


@pytest.fixture
def faulty_smtp() -> Iterator[FaultySMTPServer]:
    server = FaultySMTPServer()
    server.start()
    yield server
    server.stop()


@contextmanager
def installation(
    app_config: dict[str, Any], instance: Path, database_url: str, **settings: Any
) -> Iterator[Flask]:
    """An app with an instance folder and a database of its own, its context pushed."""
    app = create_app({**app_config, "INSTANCE_PATH": str(instance), "DATABASE_URL": database_url,
                      **settings})
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def cli(app: Flask, *args: str) -> str:
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def snapshot_of_state() -> dict[str, Any]:
    db.session.remove()
    return {
        "subscribers": sorted(db.session.scalars(select(Subscriber.email))),
        "issues": sorted(db.session.scalars(select(Issue.subject))),
        "ledger": sorted(
            (row.issue_id, row.subscriber_id, row.status.value, row.message_id)
            for row in db.session.scalars(select(Delivery))
        ),
    }


def test_a_restored_backup_serves_the_same_subscribers_issues_and_ledger(
    app_config: dict[str, Any], empty_database_urls: Callable[[], str], tmp_path: Path,
    run_jobs: Callable[[], None], app: Flask,
) -> None:
    news = make_list("news")
    for n in range(5):
        make_subscriber(f"reader{n}@example.com", lists=(news,))
    dispatcher.request_send(make_sendable_issue(news, subject="Before the backup").id)
    run_jobs()
    key = dkim.generate_key(Path(app.config["DKIM_KEY_DIR"]), "example.org",
                            selector="news", bits=1024)
    before = snapshot_of_state()
    said = cli(app, "backup", str(tmp_path / "backup"))
    assert "1 DKIM key(s)" in said
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert manifest["database"] == ("sqlite" if "sqlite" in app.config["DATABASE_URL"]
                                    else "postgresql")
    assert oct((tmp_path / "backup").stat().st_mode & 0o777) == "0o700"

    with installation(app_config, tmp_path / "new", empty_database_urls()) as new:
        assert "restored" in cli(new, "restore", str(tmp_path / "backup"))
        assert snapshot_of_state() == before
        assert len(before["ledger"]) == 5
        page = new.test_client().get("/archive")
        assert page.status_code == 200 and "Before the backup" in page.text
        restored_keys = dkim.domain_keys(Path(new.config["DKIM_KEY_DIR"]), "example.org")
        assert [k.dns_value for k in restored_keys] == [key.dns_value]
        # A second restore never overwrites what is there.
        again = new.test_cli_runner().invoke(args=["restore", str(tmp_path / "backup")])
        assert again.exit_code != 0 and "not empty" in again.output


def test_a_send_interrupted_by_the_backup_finishes_after_the_restore_with_nobody_mailed_twice(
    app_config: dict[str, Any], empty_database_urls: Callable[[], str], tmp_path: Path,
    faulty_smtp: FaultySMTPServer, app: Flask,
) -> None:
    handler = faulty_smtp.handler
    settings = {"SMTP_URL": faulty_smtp.url}
    tuning = {**settings, "BATCH_SIZE": 5, "WORKER_THREADS": 2, "SMTP_TIMEOUT": 2,
              "LEASE_SECONDS": 4}
    news = make_list("news")
    emails = [f"reader{n:02}@example.com" for n in range(30)]
    for email in emails:
        make_subscriber(email, lists=(news,))
    issue_id = make_sendable_issue(news).id
    handler.hold_after = 10  # the relay stops answering MAIL with nothing unrecorded
    processes = start_send(app, issue_id, newsletter_env(app, **tuning), tmp_path / "old-logs")
    wait_until(handler.held.is_set, timeout=60, what="the send to be under way")
    cli(app, "backup", str(tmp_path / "backup"))
    for process in processes:  # the old machine is gone
        kill_group(process)

    handler.hold_after = None
    handler.released.set()
    with installation(app_config, tmp_path / "new", empty_database_urls(), **settings) as new:
        cli(new, "restore", str(tmp_path / "backup"))
        logs = tmp_path / "new-logs"
        processes = start_send(new, issue_id, newsletter_env(new, **tuning), logs, resume=True)
        try:
            def sent() -> bool:
                db.session.remove()
                return dispatcher.progress(issue_id)["status"] == "sent"

            wait_until(sent, timeout=90, what="the restored send to finish")
        finally:
            statuses = stop_all(processes)
        assert set(statuses) <= {0}, logs_text(logs)
        counts = Counter(r.lower() for m in faulty_smtp.messages for r in m.recipients)
        assert sorted(counts) == emails
        assert set(counts.values()) == {1}
        total = db.session.scalar(select(func.count()).select_from(Delivery))
        assert total == len(emails)
