"""``newsletter issues schedule|unschedule|pause|resume|cancel|retry|status`` and
``newsletter deliveries search``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from flask import Flask
from flask.testing import FlaskCliRunner

from newsletter.content.models import Issue, IssueStatus
from newsletter.delivery.send import dispatcher
from newsletter.extensions import db
from newsletter.models import utcnow
from tests.delivery.helpers import Audience, start_workers_if_external
from tests.smtp import CapturingSMTPServer


def issue_row(issue_id: int) -> Issue:
    db.session.remove()
    return db.session.get(Issue, issue_id)


def test_schedule_in_a_timezone_and_unschedule(
    runner: FlaskCliRunner, audience: Audience, issue_id: int
) -> None:
    year = utcnow().year + 1

    result = runner.invoke(
        args=["issues", "schedule", str(issue_id), f"{year}-08-01 09:00", "--timezone",
              "Europe/Paris"]
    )

    assert result.exit_code == 0, result.output
    assert f"scheduled for {year}-08-01 09:00 Europe/Paris ({year}-08-01 07:00 UTC)" in (
        result.output
    )
    issue = issue_row(issue_id)
    assert (issue.status, issue.send_at) == (
        IssueStatus.SCHEDULED, datetime(year, 8, 1, 7, 0, tzinfo=UTC),
    )

    result = runner.invoke(args=["issues", "unschedule", str(issue_id)])
    assert result.exit_code == 0, result.output
    assert issue_row(issue_id).status is IssueStatus.DRAFT


def test_schedule_refuses_a_bad_time_with_the_reason(
    runner: FlaskCliRunner, audience: Audience, issue_id: int
) -> None:
    result = runner.invoke(args=["issues", "schedule", str(issue_id), "2001-01-01 09:00"])

    assert result.exit_code == 1
    assert "has passed" in result.output
    assert issue_row(issue_id).status is IssueStatus.DRAFT


def test_pause_then_resume_wait_sends_everyone(
    app: Flask, runner: FlaskCliRunner, audience: Audience, issue_id: int,
    mailbox: CapturingSMTPServer, run_jobs: Callable[[], None],
) -> None:
    dispatcher.request_send(issue_id)
    app.extensions["dramatiq"].flush_all()  # as if another process had queued it

    result = runner.invoke(args=["issues", "pause", str(issue_id)])
    assert (result.exit_code, result.output) == (0, f"Issue {issue_id} is paused.\n")
    assert runner.invoke(args=["issues", "pause", str(issue_id)]).exit_code == 1

    start_workers_if_external(app, run_jobs)
    result = runner.invoke(args=["issues", "resume", str(issue_id), "--wait"])

    assert result.exit_code == 0, result.output
    assert f"Issue {issue_id} sent: 4 sent, 0 failed, 0 skipped of 4." in result.output
    assert sorted(r for m in mailbox.messages for r in m.recipients) == audience.emails


def test_cancel_asks_unless_told_yes(
    runner: FlaskCliRunner, audience: Audience, issue_id: int
) -> None:
    dispatcher.request_send(issue_id)

    declined = runner.invoke(args=["issues", "cancel", str(issue_id)], input="n\n")
    assert declined.exit_code == 1
    assert issue_row(issue_id).status is IssueStatus.SENDING

    result = runner.invoke(args=["issues", "cancel", str(issue_id), "--yes"])
    assert result.exit_code == 0, result.output
    assert issue_row(issue_id).status is IssueStatus.CANCELLED


def test_retry_and_the_delivery_log(
    app: Flask, runner: FlaskCliRunner, audience: Audience, issue_id: int,
    mailbox: CapturingSMTPServer, run_jobs: Callable[[], None],
) -> None:
    mailbox.handler.refuse["cy@example.com"] = "552 5.2.2 mailbox full"
    dispatcher.request_send(issue_id)
    run_jobs()

    found = runner.invoke(
        args=["deliveries", "search", "--email", "CY@example.com", "--issue", str(issue_id)]
    )
    assert found.exit_code == 0, found.output
    assert found.output.count("\n") == 1
    assert f"issue {issue_id}\tcy@example.com\tfailed\tattempts=1" in found.output
    assert "552 5.2.2 mailbox full" in found.output

    mailbox.handler.refuse.clear()
    result = runner.invoke(args=["issues", "retry", str(issue_id), "--wait"])
    assert result.exit_code == 0, result.output
    assert "retrying 1 failed delivery" in result.output
    assert f"Issue {issue_id} sent: 4 sent, 0 failed" in result.output

    found = runner.invoke(args=["deliveries", "search", "--email", "cy@example.com"])
    assert "\tsent\t" in found.output

    status = runner.invoke(args=["issues", "status", str(issue_id)])
    assert f"Issue {issue_id} sent: 4 sent, 0 failed, 0 skipped, 0 pending of 4." in status.output


def test_the_log_pages_and_says_when_nothing_matches(
    runner: FlaskCliRunner, audience: Audience, issue_id: int
) -> None:
    dispatcher.request_send(issue_id)
    dispatcher.start_issue(issue_id)

    first = runner.invoke(args=["deliveries", "search", "--issue", str(issue_id), "--limit", "3"])
    assert first.output.count("\tpending\t") == 3
    after = first.output.strip().splitlines()[-1].removeprefix("More: --after ")
    rest = runner.invoke(
        args=["deliveries", "search", "--issue", str(issue_id), "--after", after]
    )
    assert rest.output.count("\tpending\t") == 1

    none = runner.invoke(args=["deliveries", "search", "--email", "nobody@example.com"])
    assert none.output == "No deliveries match.\n"
