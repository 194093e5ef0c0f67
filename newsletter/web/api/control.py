"""Controlling a send over the API, and its delivery log.

POST /issues/{id}/schedule {send_at, timezone?}, /unschedule, /pause, /resume, /cancel,
/retry; GET /issues/{id}/deliveries and GET /deliveries (the log, by keyset pages).
"""

from __future__ import annotations

from typing import Any

from newsletter.content import issues as issue_service
from newsletter.delivery.control import actions as control
from newsletter.delivery.control import log as delivery_log
from newsletter.delivery.control import timezones
from newsletter.delivery.models import DeliveryStatus
from newsletter.web.api.blueprint import api_user, bp
from newsletter.web.api.edge import KIB, body, errors, query
from newsletter.web.api.issues import IssueAnswer, issue_answer
from newsletter.web.api.schemas import (
    DeliveriesQuerySchema,
    DeliveryPageSchema,
    DeliveryQuerySchema,
    IssueSchema,
    RetrySchema,
    ScheduleSchema,
)


@bp.post("/issues/<int:issue_id>/schedule")
@body(ScheduleSchema, max_bytes=4 * KIB)
@bp.response(200, IssueSchema, description="the scheduled issue")
@errors(404, 409)
def schedule_issue(data: dict[str, Any], issue_id: int) -> IssueAnswer:
    """Send a draft (or move a scheduled issue) at a time, in a timezone.

    ``send_at`` is ISO 8601 with an offset, or a wall-clock time in ``timezone`` (default:
    the token owner's timezone).
    """
    zone_name = data.get("timezone") or getattr(api_user(), "timezone", None)
    zone = timezones.get_zone(zone_name)
    control.schedule(issue_id, timezones.parse_when(data["send_at"], zone))
    return issue_answer(issue_id)


@bp.post("/issues/<int:issue_id>/unschedule")
@bp.response(200, IssueSchema, description="the issue, a draft again")
@errors(404, 409)
def unschedule_issue(issue_id: int) -> IssueAnswer:
    """A scheduled issue back to draft."""
    control.unschedule(issue_id)
    return issue_answer(issue_id)


@bp.post("/issues/<int:issue_id>/pause")
@bp.response(200, IssueSchema, description="the issue, paused")
@errors(404, 409)
def pause_issue(issue_id: int) -> IssueAnswer:
    """Stop sending between two messages."""
    control.pause(issue_id)
    return issue_answer(issue_id)


@bp.post("/issues/<int:issue_id>/resume")
@bp.response(202, IssueSchema, description="the issue, sending again")
@errors(404, 409)
def resume_issue(issue_id: int) -> IssueAnswer:
    """Continue a paused send where it stopped; 202: the workers do the rest."""
    control.resume(issue_id)
    return issue_answer(issue_id)


@bp.post("/issues/<int:issue_id>/cancel")
@bp.response(200, IssueSchema, description="the issue, cancelled")
@errors(404, 409)
def cancel_issue(issue_id: int) -> IssueAnswer:
    """Stop for good: pending deliveries become skipped."""
    control.cancel(issue_id)
    return issue_answer(issue_id)


@bp.post("/issues/<int:issue_id>/retry")
@bp.response(202, RetrySchema, description="how many are retried, and the issue")
@errors(404, 409)
def retry_failed(issue_id: int) -> dict[str, Any]:
    """Send the failed deliveries of a sent issue again (not hard bounces)."""
    retried = control.retry_failed(issue_id)
    return {"retried": retried, "issue": issue_answer(issue_id)}


@bp.get("/issues/<int:issue_id>/deliveries")
@query(DeliveryQuerySchema)
@bp.response(200, DeliveryPageSchema, description="a page of deliveries, by id")
@errors(404)
def list_issue_deliveries(args: dict[str, Any], issue_id: int) -> delivery_log.LogPage:
    """The issue's delivery log: who got it, and what the relay answered."""
    issue_service.get_issue(issue_id)
    return _log_page(args, issue_id)


@bp.get("/deliveries")
@query(DeliveriesQuerySchema)
@bp.response(200, DeliveryPageSchema, description="a page of deliveries, by id")
def list_deliveries(args: dict[str, Any]) -> delivery_log.LogPage:
    """The delivery log across issues (did this address get issue 12?)."""
    return _log_page(args, args["issue"] or None)


def _log_page(args: dict[str, Any], issue_id: int | None) -> delivery_log.LogPage:
    status = args.get("status")
    return delivery_log.search(
        email=args.get("email"),
        issue_id=issue_id,
        status=DeliveryStatus(status) if status else None,
        after=args["after"],
        limit=args["limit"],
    )
