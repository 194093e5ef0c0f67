"""Turning an issue's open and click tracking on, down or off."""

from __future__ import annotations

from newsletter.content.models import Issue, IssueStatus, TrackingMode
from newsletter.errors import IssueStateError, NotFound
from newsletter.extensions import db

#: before these, the mail is not out yet: any mode may be chosen
UNSENT = (IssueStatus.DRAFT, IssueStatus.SCHEDULED)
_DETAIL = {TrackingMode.OFF: 0, TrackingMode.AGGREGATE: 1, TrackingMode.INDIVIDUAL: 2}


def set_tracking(issue_id: int, mode: TrackingMode) -> Issue:
    """Set the issue's tracking and commit.

    Before sending starts, any mode. After, only less: turning it down (to counts only, or
    off) is obeyed at once for every mail already out; turning it up would follow readers
    who were mailed under the promise of less.

    :raises NotFound: no such issue.
    :raises IssueStateError: more tracking asked for an issue already sending or sent.
    """
    issue = db.session.get(Issue, issue_id)
    if issue is None:
        raise NotFound("issue", issue_id)
    if issue.status not in UNSENT and _DETAIL[mode] > _DETAIL[issue.tracking]:
        raise IssueStateError(issue_id, issue.status.value, "track more once sending has started")
    issue.tracking = mode
    db.session.commit()
    return issue
