"""Issues: POST /issues, GET /issues[/{id}], POST /issues/{id}/send (control: control.py).

Every answer about an issue carries its status and counts from one place,
``delivery/control/progress.py``, so the answer to a send and the poll after it agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import url_for

from newsletter.content import issues as issue_service
from newsletter.content.models import Issue
from newsletter.delivery.control.progress import Progress, progress, progress_many
from newsletter.delivery.send import dispatcher
from newsletter.extensions import db
from newsletter.web.api.blueprint import bp
from newsletter.web.api.edge import KIB, body, errors, query
from newsletter.web.api.schemas import (
    IssueCreateSchema,
    IssuePageSchema,
    IssueQuerySchema,
    IssueSchema,
)


@dataclass(frozen=True)
class IssueAnswer:
    """An issue and where its send stands: what ``IssueSchema`` shows."""

    issue: Issue
    progress: Progress

    @property
    def statement_ids(self) -> list[int]:
        return [item.statement_id for item in self.issue.items]

    @property
    def list_slugs(self) -> list[str]:
        return [lst.slug for lst in self.issue.lists]

    @property
    def segment_ids(self) -> list[int]:
        return [segment.id for segment in self.issue.segments]

    @property
    def rate(self) -> float | None:
        return None if self.progress.rate is None else round(self.progress.rate, 1)

    @property
    def seconds_left(self) -> int | None:
        left = self.progress.seconds_left
        return None if left is None else round(left)


def issue_answer(issue_id: int) -> IssueAnswer:
    """The issue as every call shows it: its fields, status, counts, ``rate``, ``eta``.

    :raises NotFound: no such issue.
    """
    state = progress(issue_id)
    db.session.expire_all()  # a service may have committed a new status with a core UPDATE
    return IssueAnswer(issue_service.get_issue(issue_id), state)


@bp.post("/issues")
@body(IssueCreateSchema, max_bytes=64 * KIB)
@bp.response(201, IssueSchema, description="the new draft")
@errors(404)
def create_issue(data: dict[str, Any]) -> tuple[IssueAnswer, int, dict[str, str]]:
    """Compose a draft issue from statements (in order) for lists, segments or both: the
    segments narrow the lists' confirmed members (every segment must match); with no lists,
    the audience is everyone confirmed on some list who matches every segment."""
    issue = issue_service.create_issue(
        subject=data["subject"],
        statement_ids=data["statements"],
        list_slugs=data["lists"],
        segment_ids=data["segments"],
        template_id=data["template"],
        preheader=data["preheader"],
        intro=data["intro"],
    )
    location = url_for("api.get_issue", issue_id=issue.id)
    return issue_answer(issue.id), 201, {"Location": location}


@bp.get("/issues")
@query(IssueQuerySchema)
@bp.response(200, IssuePageSchema, description="a page of issues, newest first")
def list_issues(args: dict[str, Any]) -> dict[str, Any]:
    """Issues, newest first, with their counts, in keyset pages: ``limit`` of them (50
    unless said), then ``?before=`` the page's ``next`` for the older ones."""
    limit = int(args["limit"])
    # One more than asked says whether an older page exists, without a COUNT.
    ids = issue_service.issue_ids_page(before=args.get("before"), limit=limit + 1)
    page = ids[:limit]
    # The counts first: taking them commits, which would expire the issues loaded before.
    # Two queries for every issue not sending (progress_many), and the statements, lists
    # and segments loaded together: not a few queries per issue.
    states = progress_many(page)
    listed = issue_service.issues_with_targets(page)
    return {
        "items": [
            IssueAnswer(issue, states.get(issue.id) or progress(issue.id)) for issue in listed
        ],
        "next": page[-1] if len(ids) > limit else None,
    }


@bp.get("/issues/<int:issue_id>")
@bp.response(200, IssueSchema, description="the issue")
@errors(404)
def get_issue(issue_id: int) -> IssueAnswer:
    """One issue: status, delivery counts, ``rate`` and ``eta``, for polling while it sends."""
    return issue_answer(issue_id)


@bp.post("/issues/<int:issue_id>/send")
@bp.response(202, IssueSchema, description="sending has been requested")
@errors(404, 409)
def send_issue(issue_id: int) -> tuple[IssueAnswer, int, dict[str, str]]:
    """Start sending; 202 because the workers do the rest (poll GET /issues/{issue_id})."""
    dispatcher.request_send(issue_id)
    location = url_for("api.get_issue", issue_id=issue_id)
    return issue_answer(issue_id), 202, {"Location": location}
