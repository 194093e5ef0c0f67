"""The audience snapshot with segments: written range by range in SQL, the matching people
once each, never the blocklisted or unsubscribed, and resumable."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from newsletter.audience.models import Subscriber, SubscriberStatus, SubscriptionStatus
from newsletter.audience.segments.service import create_segment
from newsletter.content.issues import create_issue
from newsletter.delivery.models import Delivery
from newsletter.delivery.send import snapshot
from newsletter.extensions import db
from tests.factories import make_list, make_statement, make_subscriber


def _people() -> None:
    news, other = make_list("news"), make_list("other")
    for number in range(1, 41):
        city = "Madrid" if number % 4 == 0 else "Lima"
        status = SubscriptionStatus.UNSUBSCRIBED if number == 8 else SubscriptionStatus.CONFIRMED
        person = make_subscriber(f"p{number:02}@example.org", lists=(news if number <= 30
                                 else other,), status=status, attributes={"city": city})
        if number == 12:
            person.status = SubscriberStatus.BLOCKLISTED
            db.session.commit()


def _written(issue_id: int) -> list[str]:
    emails = db.session.scalars(
        select(Subscriber.email).join(Delivery, Delivery.subscriber_id == Subscriber.id)
        .where(Delivery.issue_id == issue_id).order_by(Subscriber.email)
    )
    return [email.split("@")[0] for email in emails]


def test_segments_narrow_the_lists_range_by_range(app: Any) -> None:
    _people()
    madrid = create_segment("Madrid", 'attributes.city = "Madrid"')
    issue = create_issue(subject="S", statement_ids=[make_statement().id], list_slugs=["news"],
                         segment_ids=[madrid.id])
    assert snapshot.count_audience(issue.id) == 5  # 4..28 step 4, less 8 and 12
    ranges = list(snapshot.write_audience(issue.id, snapshot.audience_ceiling(), 2))
    assert len(ranges) > 1
    assert _written(issue.id) == ["p04", "p16", "p20", "p24", "p28"]


def test_segments_without_lists_take_everyone_confirmed_somewhere(app: Any) -> None:
    _people()
    madrid = create_segment("Madrid", 'attributes.city = "Madrid"')
    issue = create_issue(subject="S", statement_ids=[make_statement().id], list_slugs=[],
                         segment_ids=[madrid.id])
    assert snapshot.count_audience(issue.id) == 8
    first = next(snapshot.write_audience(issue.id, snapshot.audience_ceiling(), 1))
    assert first.added >= 0
    list(snapshot.write_audience(issue.id, snapshot.audience_ceiling(), 1))  # resumes
    assert _written(issue.id) == ["p04", "p16", "p20", "p24", "p28", "p32", "p36", "p40"]


def test_two_segments_must_both_match(app: Any) -> None:
    _people()
    madrid = create_segment("Madrid", 'attributes.city = "Madrid"')
    early = create_segment("Early", 'email < "p20"')
    issue = create_issue(subject="S", statement_ids=[make_statement().id], list_slugs=["news"],
                         segment_ids=[madrid.id, early.id])
    list(snapshot.write_audience(issue.id, snapshot.audience_ceiling(), 3))
    assert _written(issue.id) == ["p04", "p16"]
