"""Controlling a send over the API, and its delivery log.

POST /issues/{id}/schedule {send_at, timezone?}, /unschedule, /pause, /resume, /cancel,
/retry; GET /issues/{id}/deliveries and GET /deliveries (the log, by keyset pages).
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from newsletter.content import issues as issue_service
from newsletter.delivery.control import actions as control
from newsletter.delivery.control import log as delivery_log
from newsletter.delivery.control import timezones
from newsletter.delivery.control.progress import progress
from newsletter.extensions import db
from newsletter.web.api import serializers
from newsletter.web.api.blueprint import api_user, bp
from newsletter.web.api.validation import json_object, query_int
from newsletter.web.ids import MAX_ID


def issue_with_progress(issue_id: int) -> dict[str, Any]:
    """The issue as GET /issues/{id} shows it: its fields, counts, ``rate``, ``eta``."""
    db.session.expire_all()  # a service committed a new status with a core UPDATE
    issue = issue_service.get_issue(issue_id)
    live = progress(issue_id).as_dict()
    counts = {key: live[key] for key in serializers.COUNT_KEYS}
    return {
        **serializers.issue(issue, counts),
        "rate": live["rate"],
        "eta": live["eta"],
        "seconds_left": live["seconds_left"],
    }


@bp.post("/issues/<int:issue_id>/schedule")
def schedule_issue(issue_id: int) -> Response:
    """Send the issue at ``send_at``: ISO 8601 with an offset, or a wall-clock time in
    ``timezone`` (default: the token owner's timezone)."""
    body = json_object({"send_at", "timezone"})
    raw = body.string("send_at", required=True)
    zone_name = body.string("timezone") or getattr(api_user(), "timezone", None)
    zone = timezones.get_zone(zone_name)
    control.schedule(issue_id, timezones.parse_when(raw, zone))
    return jsonify(issue_with_progress(issue_id))


@bp.post("/issues/<int:issue_id>/unschedule")
def unschedule_issue(issue_id: int) -> Response:
    """Back to draft."""
    control.unschedule(issue_id)
    return jsonify(issue_with_progress(issue_id))


@bp.post("/issues/<int:issue_id>/pause")
def pause_issue(issue_id: int) -> Response:
    """Stop sending between two messages."""
    control.pause(issue_id)
    return jsonify(issue_with_progress(issue_id))


@bp.post("/issues/<int:issue_id>/resume")
def resume_issue(issue_id: int) -> tuple[Response, int]:
    """Continue a paused send; 202: the workers do the rest."""
    control.resume(issue_id)
    return jsonify(issue_with_progress(issue_id)), 202


@bp.post("/issues/<int:issue_id>/cancel")
def cancel_issue(issue_id: int) -> Response:
    """Stop for good; pending deliveries become skipped."""
    control.cancel(issue_id)
    return jsonify(issue_with_progress(issue_id))


@bp.post("/issues/<int:issue_id>/retry")
def retry_issue(issue_id: int) -> tuple[Response, int]:
    """Send the failed deliveries of a sent issue again (not hard bounces): 202 with
    ``retried`` (how many) and the issue."""
    retried = control.retry_failed(issue_id)
    return jsonify({"retried": retried, "issue": issue_with_progress(issue_id)}), 202


@bp.get("/issues/<int:issue_id>/deliveries")
def issue_deliveries(issue_id: int) -> Response:
    """The issue's delivery log: ``?email=`` (whole address), ``?status=``, keyset pages."""
    issue_service.get_issue(issue_id)
    return _log_page(issue_id)


@bp.get("/deliveries")
def deliveries() -> Response:
    """The delivery log across issues: ``?email=``, ``?issue=``, ``?status=``, keyset pages."""
    issue_id = query_int("issue", default=0, minimum=0, maximum=MAX_ID)
    return _log_page(issue_id or None)


def _log_page(issue_id: int | None) -> Response:
    status = delivery_log.parse_status(request.args.get("status"))
    after = query_int("after", default=0, minimum=0, maximum=MAX_ID)
    limit = query_int(
        "limit", default=delivery_log.DEFAULT_LIMIT, minimum=1, maximum=delivery_log.MAX_LIMIT
    )
    page = delivery_log.search(
        email=request.args.get("email"), issue_id=issue_id, status=status, after=after,
        limit=limit,
    )
    return jsonify({"items": [entry.as_dict() for entry in page.items], "next": page.next})
