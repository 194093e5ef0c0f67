"""``newsletter issues send ID [--wait]``."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskCliRunner

from newsletter.broker import is_embedded
from newsletter.content.models import Issue, IssueStatus
from newsletter.delivery.send import dispatcher
from newsletter.extensions import db
from tests.delivery.helpers import Audience, start_workers_if_external
from tests.smtp import CapturingSMTPServer


def test_send_wait_sends_the_issue_and_reports_the_outcome(
    app: Flask, runner: FlaskCliRunner, audience: Audience, issue_id: int,
    mailbox: CapturingSMTPServer, run_jobs: Callable[[], None],
) -> None:
    start_workers_if_external(app, run_jobs)

    result = runner.invoke(args=["issues", "send", str(issue_id), "--wait"])

    assert result.exit_code == 0, result.output
    assert f"Issue {issue_id} is sending." in result.output
    assert f"Issue {issue_id} sent: 4 sent, 0 failed, 0 skipped of 4." in result.output
    assert sorted(r for m in mailbox.messages for r in m.recipients) == audience.emails
    db.session.remove()
    assert db.session.get(Issue, issue_id).status is IssueStatus.SENT


def test_send_without_wait_starts_the_send_and_returns(
    app: Flask, runner: FlaskCliRunner, audience: Audience, issue_id: int
) -> None:
    result = runner.invoke(args=["issues", "send", str(issue_id)])

    assert result.exit_code == 0, result.output
    assert dispatcher.progress(issue_id)["status"] == "sending"
    if is_embedded(app):
        assert "newsletter run" in result.output


def test_send_wait_resumes_an_issue_already_sending(
    app: Flask, runner: FlaskCliRunner, audience: Audience, issue_id: int,
    mailbox: CapturingSMTPServer, run_jobs: Callable[[], None],
) -> None:
    dispatcher.request_send(issue_id)
    app.extensions["dramatiq"].flush_all()  # the process that pressed send is gone
    start_workers_if_external(app, run_jobs)

    result = runner.invoke(args=["issues", "send", str(issue_id), "--wait"])

    assert result.exit_code == 0, result.output
    assert "already sending" in result.output
    assert sorted(r for m in mailbox.messages for r in m.recipients) == audience.emails


def test_sending_a_sent_issue_is_refused(
    runner: FlaskCliRunner, audience: Audience, issue_id: int
) -> None:
    db.session.get(Issue, issue_id).status = IssueStatus.SENT
    db.session.commit()

    result = runner.invoke(args=["issues", "send", str(issue_id)])

    assert result.exit_code == 1
    assert f"issue {issue_id} is sent; cannot send" in result.output


def test_sending_an_unknown_issue_says_so(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["issues", "send", "999"])

    assert result.exit_code == 1
    assert "no issue 999" in result.output


def test_send_has_help(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["issues", "send", "--help"])

    assert result.exit_code == 0
    assert "--wait" in result.output


def test_send_wait_on_a_sent_issue_reports_it_and_succeeds(
    app: Flask, runner: FlaskCliRunner, issue_id: int, run_jobs: Callable[[], None]
) -> None:
    dispatcher.request_send(issue_id)
    run_jobs()
    result = runner.invoke(args=["issues", "send", str(issue_id), "--wait"])
    assert result.exit_code == 0, result.output
    assert f"Issue {issue_id} was already sent: 4 sent, 0 failed, 0 skipped of 4." in result.output
    again = runner.invoke(args=["issues", "send", str(issue_id)])
    assert again.exit_code == 1
    assert "is sent; cannot send" in again.output
