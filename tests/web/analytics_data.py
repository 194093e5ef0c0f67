"""Data for the Analytics tab's tests (page, API, browser): a sent issue with a history."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient

from newsletter.auth.models import Role
from newsletter.auth.services import create_api_token, create_user
from newsletter.content.models import IssueStatus, TrackingMode
from newsletter.delivery.analytics.counters import bump, note_progress
from newsletter.delivery.analytics.models import Metric
from newsletter.delivery.bounces.models import BounceEvent, BounceKind, BounceSource
from newsletter.delivery.models import Delivery, DeliveryStatus
from newsletter.extensions import db
from newsletter.models import utcnow
from tests.factories import make_issue, make_list, make_statement, make_subscriber
from tests.web.admin_browser import PASSWORD, as_browser, log_in


def browser_as(app: Flask, role: Role) -> FlaskClient:
    """A browser logged in with a new account of ``role``."""
    email = f"{role.value}@example.org"
    create_user(email, PASSWORD, role=role)
    client = as_browser(app.test_client())
    assert log_in(client, email=email).status_code == 302
    return client


def token_as(role: Role) -> dict[str, str]:
    """The headers of an API client with a new account of ``role``."""
    email = f"robot-{role.value}@example.org"
    create_user(email, PASSWORD, role=role)
    return {"Authorization": f"Bearer {create_api_token(email)}"}


def seed_sent_issue() -> int:
    """An issue sent to three people three hours ago: two delivered, one failed, then a
    bounce, a complaint, an unsubscribe, opens and clicks (some by machines)."""
    news = make_list("news", name="News")
    people = [make_subscriber(f"r{n}@example.org", lists=(news,)) for n in range(3)]
    started = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    issue = make_issue(
        (make_statement(),),
        (news,),
        subject="Weekly <b>news</b>",
        status=IssueStatus.SENT,
        started_at=started,
        total_count=3,
        sent_count=2,  # the counters the finish writes (``dispatcher.finish_if_done``)
        failed_count=1,
        finished_at=started + timedelta(minutes=2),
        tracking=TrackingMode.AGGREGATE,
        rendered_html='<p><a href="https://example.org/more">more</a></p>',
    )
    for person, status in zip(people, ["sent", "sent", "failed"], strict=True):
        db.session.add(
            Delivery(issue_id=issue.id, subscriber_id=person.id, status=DeliveryStatus(status))
        )
    note_progress(issue.id, started, sent=1, failed=0)
    note_progress(issue.id, started + timedelta(minutes=1), sent=2, failed=1)
    for person, kind, hours in [
        (people[2], BounceKind.HARD, 0),
        (people[1], BounceKind.COMPLAINT, 2),
    ]:
        db.session.add(
            BounceEvent(
                subscriber_id=person.id,
                issue_id=issue.id,
                kind=kind,
                source=BounceSource.IMPORT,
                reason="",
                occurred_at=started + timedelta(hours=hours, minutes=5),
            )
        )
    bump(issue.id, Metric.UNSUBSCRIBE, at=started + timedelta(hours=2))
    bump(issue.id, Metric.OPEN, at=started + timedelta(hours=1), by=5)
    bump(issue.id, Metric.OPEN_FILTERED, at=started + timedelta(hours=1), by=7)
    bump(issue.id, Metric.CLICK, link=1, at=started + timedelta(hours=1), by=2)
    bump(issue.id, Metric.CLICK_FILTERED, link=1, at=started, by=3)
    db.session.commit()
    return int(issue.id)
