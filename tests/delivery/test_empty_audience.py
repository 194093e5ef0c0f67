"""An issue whose audience is empty is refused with a clear message wherever it is sent
from (admin, API, CLI) and never becomes ``sent`` or public."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskCliRunner

from newsletter.content.models import Issue, IssueStatus
from newsletter.extensions import db
from tests.delivery.helpers import make_sendable_issue
from tests.factories import make_list
from tests.web.admin_browser import logged_in_admin, token_for


def empty_issue() -> int:
    return make_sendable_issue(make_list("nobody-here", name="Nobody here")).id


def status_of(issue_id: int) -> IssueStatus:
    db.session.expire_all()
    issue = db.session.get(Issue, issue_id)
    assert issue is not None
    return issue.status


def test_the_admin_send_button_says_why_and_sends_nothing(app: Flask) -> None:
    issue_id = empty_issue()
    admin = logged_in_admin(app)

    response = admin.post(f"/admin/issues/{issue_id}/send", data={
        "csrf_token": token_for(admin, f"/admin/issues/{issue_id}")}, follow_redirects=True)

    page = response.get_data(as_text=True)
    assert "Not sent: nobody would receive" in page and "Nobody here" in page
    assert status_of(issue_id) is IssueStatus.DRAFT


def test_the_api_answers_422_naming_the_lists(app: Flask, client: Any) -> None:
    from newsletter.auth.services import create_api_token, create_user

    create_user("robot@example.org", "a long enough password 123")
    headers = {"Authorization": f"Bearer {create_api_token('robot@example.org')}"}
    issue_id = empty_issue()

    response = client.post(f"/api/v1/issues/{issue_id}/send", headers=headers)

    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["field"] == "lists" and "no confirmed subscriber" in error["message"]
    assert status_of(issue_id) is IssueStatus.DRAFT
    assert client.get("/archive").get_data(as_text=True).count("This week") == 0


def test_the_cli_exits_with_the_reason(app: Flask, runner: FlaskCliRunner) -> None:
    issue_id = empty_issue()

    result = runner.invoke(args=["issues", "send", str(issue_id)])

    assert result.exit_code != 0
    assert "nobody would receive" in result.output
    assert status_of(issue_id) is IssueStatus.DRAFT
