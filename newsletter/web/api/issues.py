"""Issues: POST /issues, GET /issues[/{id}], POST /issues/{id}/send (control: control.py)."""

from __future__ import annotations

from flask import Response, jsonify, url_for

from newsletter.content import issues as issue_service
from newsletter.content.models import Issue
from newsletter.delivery.send import dispatcher
from newsletter.extensions import db
from newsletter.web.api import serializers
from newsletter.web.api.blueprint import bp
from newsletter.web.api.control import issue_with_progress
from newsletter.web.api.validation import json_object


@bp.post("/issues")
def create_issue() -> tuple[Response, int, dict[str, str]]:
    """Compose a draft issue from statements (in order) for lists; 201 with the issue."""
    body = json_object({"subject", "statements", "lists", "template", "preheader", "intro"})
    issue = issue_service.create_issue(
        subject=body.string("subject", required=True).strip(),
        statement_ids=body.integer_list("statements", required=True),
        list_slugs=body.string_list("lists", required=True),
        template_id=body.integer("template"),
        preheader=body.string("preheader").strip(),
        intro=body.string("intro"),
    )
    location = url_for("api.get_issue", issue_id=issue.id)
    return _issue(issue), 201, {"Location": location}


@bp.get("/issues")
def list_issues() -> Response:
    """Every issue, newest first, with its counts."""
    items = [
        serializers.issue(issue, issue_service.issue_counts(issue))
        for issue in issue_service.list_issues()
    ]
    return jsonify({"items": items})


@bp.get("/issues/<int:issue_id>")
def get_issue(issue_id: int) -> Response:
    """One issue: status, delivery counts, ``rate`` and ``eta``, for polling while it sends."""
    return jsonify(issue_with_progress(issue_id))


@bp.post("/issues/<int:issue_id>/send")
def send_issue(issue_id: int) -> tuple[Response, int, dict[str, str]]:
    """Start sending; 202 because the workers do the rest (poll GET /issues/{id})."""
    dispatcher.request_send(issue_id)
    db.session.expire_all()  # the dispatcher committed a new status
    location = url_for("api.get_issue", issue_id=issue_id)
    return _issue(issue_service.get_issue(issue_id)), 202, {"Location": location}


def _issue(issue: Issue) -> Response:
    return jsonify(serializers.issue(issue, issue_service.issue_counts(issue)))
