"""progress: the one answer to "what state is this issue in, and what are its counts"."""

from __future__ import annotations

from flask import Flask

from newsletter.content.models import IssueStatus
from newsletter.delivery.control.progress import Counts, progress
from newsletter.delivery.models import Delivery, DeliveryStatus
from newsletter.extensions import db
from tests.factories import make_issue, make_list, make_statement, make_subscriber


def test_counts_come_from_the_deliveries_by_outcome(app: Flask) -> None:
    lst = make_list()
    issue = make_issue((make_statement(),), (lst,))
    statuses = [DeliveryStatus.SENT] * 3 + [
        DeliveryStatus.FAILED, DeliveryStatus.PENDING, DeliveryStatus.SKIPPED,
    ]
    for status in statuses:
        subscriber = make_subscriber(lists=(lst,))
        db.session.add(Delivery(issue_id=issue.id, subscriber_id=subscriber.id, status=status))
    issue.status = IssueStatus.PAUSED
    db.session.commit()

    state = progress(issue.id)

    assert state.status is IssueStatus.PAUSED
    assert state.counts == Counts(sent=3, failed=1, skipped=1, pending=1)
    assert state.counts.total == 6


def test_an_issue_not_started_has_no_counts(app: Flask) -> None:
    issue = make_issue((make_statement(),), (make_list(),))

    state = progress(issue.id)

    assert (state.status, state.counts.total) == (IssueStatus.DRAFT, 0)
