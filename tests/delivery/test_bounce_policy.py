"""The bounce policy: hard bounces stop at once, soft ones score as Mailman's do, complaints
unsubscribe everywhere; every event kept; an editor can reinstate; unreadable mail is kept."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from newsletter.audience.models import Subscriber, SubscriberStatus, SubscriptionStatus
from newsletter.audience.segments.service import count_matching
from newsletter.delivery.bounces import policy, settings
from newsletter.delivery.bounces.models import BounceEvent, BounceKind, BounceSource, UnreadBounce
from newsletter.delivery.models import DeliveryStatus
from newsletter.delivery.send import dispatcher
from newsletter.extensions import db
from tests.delivery.bounce_samples import dsn, unreadable
from tests.delivery.helpers import Audience, deliveries_by_email, make_sendable_issue
from tests.factories import make_list, make_subscriber
from tests.smtp import CapturingSMTPServer

DAY1 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def fresh(email: str) -> Subscriber:
    db.session.commit()
    db.session.expire_all()
    return db.session.scalars(select(Subscriber).where(Subscriber.email == email)).one()


def events(email: str) -> list[BounceEvent]:
    return policy.events_of(fresh(email).id)


@pytest.fixture
def reader(app: object) -> str:
    news, events_list = make_list("news"), make_list("events")
    make_subscriber("reader@example.net", lists=(news, events_list))
    return "reader@example.net"


def test_a_hard_bounce_stops_the_address_at_once_and_is_kept(reader: str) -> None:
    event = policy.record(reader, "hard", "550 5.1.1 user unknown", BounceSource.API)

    assert event is not None
    subscriber = fresh(reader)
    assert subscriber.status is SubscriberStatus.BLOCKLISTED
    assert policy.is_stopped(subscriber)
    [kept] = events(reader)
    assert (kept.kind, kept.source, kept.reason) == (
        BounceKind.HARD, BounceSource.API, "550 5.1.1 user unknown"
    )
    # The blocklist page says why, like any other blocklisted address.
    assert subscriber.attributes["_blocklist"]["reason"].startswith("hard bounce")


def test_soft_bounces_count_once_a_day_and_stop_at_the_threshold(reader: str) -> None:
    for day in range(4):
        policy.record(reader, "soft", "452 mailbox full", BounceSource.IMPORT,
                      now=DAY1 + timedelta(days=day))  # fmt: skip
        # a second bounce on the same day does not count
        policy.record(reader, "soft", "452 mailbox full", BounceSource.IMPORT,
                      now=DAY1 + timedelta(days=day, hours=5))  # fmt: skip
    subscriber = fresh(reader)
    assert subscriber.bounce_score == 4
    assert subscriber.status is SubscriberStatus.ACTIVE
    assert [e.counted for e in reversed(events(reader))] == [True, False] * 4

    policy.record(reader, "soft", "452 mailbox full", BounceSource.IMPORT,
                  now=DAY1 + timedelta(days=4))  # fmt: skip
    subscriber = fresh(reader)
    assert subscriber.bounce_score == 5
    assert subscriber.status is SubscriberStatus.BLOCKLISTED
    assert subscriber.attributes["_blocklist"]["reason"] == "soft bounces: score 5"


def test_a_stale_score_starts_again(reader: str) -> None:
    for day in (0, 1, 2):
        policy.record(reader, "soft", "full", BounceSource.IMPORT, now=DAY1 + timedelta(days=day))
    assert fresh(reader).bounce_score == 3
    # Eight days after the last counted bounce: the score was stale, this one is the first.
    policy.record(reader, "soft", "full", BounceSource.IMPORT, now=DAY1 + timedelta(days=10))
    subscriber = fresh(reader)
    assert (subscriber.bounce_score, subscriber.bounce_score_day) == (
        1, (DAY1 + timedelta(days=10)).date()
    )
    # Exactly seven days later is not stale yet.
    policy.record(reader, "soft", "full", BounceSource.IMPORT, now=DAY1 + timedelta(days=17))
    assert fresh(reader).bounce_score == 2


def test_the_admins_threshold_and_stale_days_apply(reader: str) -> None:
    settings.save(2, 3)
    assert settings.current() == settings.Policy(2, 3)
    policy.record(reader, "soft", "full", BounceSource.IMPORT, now=DAY1)
    policy.record(reader, "soft", "full", BounceSource.IMPORT, now=DAY1 + timedelta(days=4))
    assert fresh(reader).bounce_score == 1  # four days: stale under a 3-day rule
    policy.record(reader, "soft", "full", BounceSource.IMPORT, now=DAY1 + timedelta(days=5))
    assert fresh(reader).status is SubscriberStatus.BLOCKLISTED


def test_policy_values_out_of_range_are_refused(app: object) -> None:
    from newsletter.errors import ValidationError

    with pytest.raises(ValidationError) as refused:
        settings.save(0, 7)
    assert refused.value.field == "score_threshold"
    with pytest.raises(ValidationError) as refused:
        settings.save(5, 400)
    assert refused.value.field == "stale_days"


def test_a_complaint_unsubscribes_from_every_list(reader: str) -> None:
    policy.record(reader, BounceKind.COMPLAINT, "abuse", BounceSource.API)

    subscriber = fresh(reader)
    assert {s.status for s in subscriber.subscriptions} == {SubscriptionStatus.UNSUBSCRIBED}
    assert all(s.unsubscribed_at is not None for s in subscriber.subscriptions)
    assert [e.kind for e in events(reader)] == [BounceKind.COMPLAINT]


def test_reinstate_mails_the_address_again_from_a_zero_score(reader: str) -> None:
    for day in range(5):
        policy.record(reader, "soft", "full", BounceSource.IMPORT, now=DAY1 + timedelta(days=day))
    assert fresh(reader).status is SubscriberStatus.BLOCKLISTED

    policy.reinstate(fresh(reader).id, by="editor@example.org")

    subscriber = fresh(reader)
    assert subscriber.status is SubscriberStatus.ACTIVE
    assert (subscriber.bounce_score, subscriber.bounce_score_day) == (0, None)
    assert "_blocklist" not in subscriber.attributes
    assert len(events(reader)) == 5  # the history stays


def test_an_unknown_address_records_nothing(app: object) -> None:
    assert policy.record("nobody@example.net", "hard", "550", BounceSource.API) is None
    assert db.session.scalar(select(func.count()).select_from(BounceEvent)) == 0
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_an_unreadable_message_is_kept_never_dropped(app: object) -> None:
    raw = unreadable("Re: your letter") + b"x" * (policy.MAX_KEPT_BYTES + 10)

    outcome = policy.take_message(raw, BounceSource.MAILBOX)

    assert (outcome.kind, outcome.recipient, outcome.kept) == ("ignored", None, True)
    [kept] = policy.unread()
    assert kept.id == outcome.unread_id
    assert kept.subject == "Re: your letter"
    assert kept.source is BounceSource.MAILBOX
    assert len(kept.raw) == policy.MAX_KEPT_BYTES
    assert kept.raw.startswith(b"From: Someone")


def test_a_delayed_report_records_nothing(reader: str) -> None:
    outcome = policy.take_message(
        dsn(reader, action="delayed", status="4.4.1", diagnostic="smtp; 451 try later"),
        BounceSource.MAILBOX,
    )
    assert (outcome.kind, outcome.kept) == ("ignored", False)
    assert events(reader) == []
    assert db.session.scalar(select(func.count()).select_from(UnreadBounce)) == 0


def test_take_message_without_a_token_uses_the_reports_recipient(reader: str) -> None:
    outcome = policy.take_message(dsn(reader), BounceSource.MAILBOX)
    assert (outcome.kind, outcome.recipient) == ("hard", reader)
    assert fresh(reader).status is SubscriberStatus.BLOCKLISTED


def test_resolving_an_unread_message_by_hand(reader: str) -> None:
    kept = policy.take_message(unreadable(), BounceSource.LMTP)
    assert kept.unread_id is not None
    event = policy.resolve_unread(kept.unread_id, kind="complaint", email=reader)
    assert event is not None and event.source is BounceSource.ADMIN
    assert policy.unread() == []
    dismissed = policy.take_message(unreadable(), BounceSource.LMTP)
    assert dismissed.unread_id is not None
    assert policy.resolve_unread(dismissed.unread_id, kind=None) is None
    assert policy.unread() == []


def test_bounced_segment_counts_bounce_events(reader: str) -> None:
    make_subscriber("fine@example.net", lists=(make_list("other"),))
    assert count_matching("bounced") == 0
    policy.record(reader, "complaint", "abuse", BounceSource.API)
    assert count_matching("bounced") == 1  # complained: not blocklisted, still bounced
    assert count_matching("not bounced") == 1
    policy.record(reader, "soft", "full", BounceSource.API)
    policy.reinstate(fresh(reader).id)
    assert count_matching("bounced") == 1


def test_a_synchronous_hard_5xx_goes_through_the_policy(
    audience: Audience, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    mailbox.handler.refuse["ada@example.com"] = "550 5.1.1 <ada@example.com>: no such user"
    issue_id = make_sendable_issue(audience.news, audience.events).id
    dispatcher.request_send(issue_id)
    run_jobs()

    assert deliveries_by_email(issue_id)["ada@example.com"].status is DeliveryStatus.FAILED
    assert fresh("ada@example.com").status is SubscriberStatus.BLOCKLISTED
    [event] = events("ada@example.com")
    assert (event.kind, event.source, event.issue_id) == (
        BounceKind.HARD, BounceSource.SMTP, issue_id
    )
    assert event.delivery_id == deliveries_by_email(issue_id)["ada@example.com"].id
    assert "5.1.1" in event.reason


def test_a_stopped_address_is_left_out_of_the_next_issue(
    audience: Audience, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    for day in range(5):
        policy.record("bo@example.com", "soft", "full", BounceSource.API,
                      now=DAY1 + timedelta(days=day))  # fmt: skip
    issue_id = make_sendable_issue(audience.news, audience.events).id
    dispatcher.request_send(issue_id)
    run_jobs()
    assert "bo@example.com" not in deliveries_by_email(issue_id)
    got = sorted(r.lower() for m in mailbox.messages for r in m.recipients)
    assert got == sorted(set(audience.emails) - {"bo@example.com"})
