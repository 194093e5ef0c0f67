"""The audit log's service: recording, retention, the sweep, and what commands record."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from newsletter import audit
from newsletter.audience.lists import get_list_by_slug
from newsletter.auth import services
from newsletter.auth.models import AuditEvent
from newsletter.delivery.workers import start_sweeper
from newsletter.extensions import db
from newsletter.models import utcnow
from tests.factories import make_list


def events() -> list[AuditEvent]:
    db.session.remove()
    return list(db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def event_aged(days: float, action: str) -> None:
    db.session.add(
        AuditEvent(actor="cli", action=action, created_at=utcnow() - timedelta(days=days))
    )
    db.session.commit()


def test_no_address_is_kept_unless_the_setting_says_so(app: Flask) -> None:
    assert app.config["STORE_IP"] is False  # the default
    audit.record("admin.lists", actor="ed@example.org", ip="203.0.113.7")
    app.config["STORE_IP"] = True
    audit.record("admin.lists", actor="ed@example.org", ip="203.0.113.7")
    assert [event.ip for event in events()] == [None, "203.0.113.7"]


def test_overlong_values_are_cut_to_their_columns(app: Flask) -> None:
    audit.record("a" * 500, actor="b" * 500, target="c" * 500)
    [event] = events()
    assert (len(event.action), len(event.actor), len(event.target)) == (100, 320, 200)


def test_events_past_the_retention_are_deleted(app: Flask) -> None:
    app.config["AUDIT_RETENTION_DAYS"] = 30
    event_aged(31, "old")
    event_aged(29, "recent")
    assert audit.purge_expired() == 1
    assert [event.action for event in events()] == ["recent"]


def test_a_retention_of_zero_keeps_everything(app: Flask) -> None:
    app.config["AUDIT_RETENTION_DAYS"] = 0
    event_aged(5000, "ancient")
    assert audit.purge_expired() == 0
    assert len(events()) == 1


def test_the_retention_is_a_year_unless_set(app: Flask) -> None:
    assert app.config["AUDIT_RETENTION_DAYS"] == 365
    event_aged(366, "old")
    event_aged(364, "kept")
    audit.purge_expired()
    assert [event.action for event in events()] == ["kept"]


def test_the_workers_sweep_deletes_expired_events(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.config["AUDIT_RETENTION_DAYS"] = 30
    event_aged(31, "old")
    event_aged(1, "recent")
    purged = threading.Event()
    real_purge = audit.purge_expired

    def purge_and_tell(now: datetime | None = None) -> int:
        deleted = real_purge(now)
        purged.set()
        return deleted

    monkeypatch.setattr(audit, "purge_expired", purge_and_tell)
    app.config["SWEEP_SECONDS"] = 0.05
    sweeper = start_sweeper(app, unstarted=False)
    try:
        assert purged.wait(10), "the sweep never purged the audit log"
    finally:
        sweeper.stop()
        sweeper.join(5)
    assert [event.action for event in events()] == ["recent"]


def test_search_matches_parts_and_whole_days(app: Flask) -> None:
    for actor, action, day in (
        ("ada@example.org", "admin.issue_send", 1),
        ("grace@example.org", "api.create_list", 2),
        ("cli", "cli.lists_create", 3),
    ):
        db.session.add(
            AuditEvent(actor=actor, action=action,
                       created_at=datetime(2024, 6, day, 23, 59, tzinfo=UTC))
        )
    db.session.commit()

    def found(**wanted: Any) -> list[str]:
        return [event.action for event in audit.search(audit.AuditFilter(**wanted)).items]

    assert found(actor="Grace") == ["api.create_list"]
    assert found(action="CREATE") == ["cli.lists_create", "api.create_list"]
    day_two = datetime(2024, 6, 2).date()
    assert found(since=day_two, until=day_two) == ["api.create_list"]
    assert found(action="_") == ["cli.lists_create", "api.create_list", "admin.issue_send"]
    assert found(action="%") == []
    assert audit.known_actions() == ["admin.issue_send", "api.create_list", "cli.lists_create"]


# --- commands ----------------------------------------------------------------------------


def test_commands_that_change_things_record_themselves(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    password = "correct horse battery"
    assert runner.invoke(
        args=["users", "create", "ed@example.org", "--role", "editor", "--password-stdin"],
        input=password + "\n",
    ).exit_code == 0
    token = runner.invoke(args=["tokens", "create", "ed@example.org"]).output.strip()
    assert runner.invoke(args=["lists", "create", "news", "--name", "News"]).exit_code == 0
    people = tmp_path / "people.csv"
    people.write_text("email,name\nada@example.org,Ada Lovelace\n", encoding="utf-8")
    assert runner.invoke(
        args=["subscribers", "import", str(people), "--list", "news", "--confirmed"]
    ).exit_code == 0

    user_id = services.find_user("ed@example.org").id  # type: ignore[union-attr]
    recorded = events()
    assert [(e.action, e.actor, e.target) for e in recorded] == [
        ("cli.users_create", "cli", f"user_id={user_id}"),
        ("cli.tokens_create", "cli", f"user_id={user_id}"),
        ("cli.lists_create", "cli", f"list_id={get_list_by_slug('news').id} slug=news"),
        ("cli.subscribers_import", "cli", "slug=news"),
    ]
    assert recorded[0].detail == {"role": "editor"}
    assert recorded[3].detail["created"] == 1
    kept = json.dumps([[e.target, e.detail] for e in recorded])
    for secret in (password, token, "ada@example.org", "Lovelace"):
        assert secret not in kept


def test_a_refused_command_records_nothing(app: Flask, runner: FlaskCliRunner) -> None:
    make_list("news")
    assert runner.invoke(args=["lists", "create", "news", "--name", "Again"]).exit_code != 0
    assert runner.invoke(args=["tokens", "create", "nobody@example.org"]).exit_code != 0
    assert events() == []
