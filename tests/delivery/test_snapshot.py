"""Starting a send: who is in the audience, fixed when "send" is pressed, written once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from newsletter import tasks
from newsletter.content.models import Issue, IssueStatus
from newsletter.delivery.models import Delivery, DeliveryStatus
from newsletter.delivery.send import dispatcher, snapshot
from newsletter.errors import EmptyAudience, IssueStateError, NotFound, ValidationError
from newsletter.extensions import db
from tests.delivery.helpers import Audience, make_sendable_issue
from tests.factories import make_issue, make_list, make_statement, make_subscriber


def recipients_of(issue_id: int) -> list[str]:
    from newsletter.audience.models import Subscriber

    db.session.commit()  # a fresh transaction sees what workers committed
    return sorted(
        db.session.scalars(
            select(Subscriber.email)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.issue_id == issue_id)
        )
    )


def test_audience_is_confirmed_active_subscribers_of_the_target_lists_once_each(
    audience: Audience, issue_id: int
) -> None:
    dispatcher.request_send(issue_id)
    dispatcher.start_issue(issue_id)

    assert recipients_of(issue_id) == audience.emails  # cy@ is on both lists, mailed once
    sending = db.session.get(Issue, issue_id)
    assert sending.status is IssueStatus.SENDING
    assert sending.total_count == 4
    assert sending.started_at is not None
    assert sending.rendered_html and sending.rendered_text and sending.rendered_subject


def test_subscribers_added_after_send_is_pressed_are_not_in_the_audience(
    audience: Audience, issue_id: int
) -> None:
    dispatcher.request_send(issue_id)
    late = make_subscriber("late@example.com", lists=(audience.news,))
    dispatcher.start_issue(issue_id)

    assert "late@example.com" not in recipients_of(issue_id)
    assert db.session.get(Issue, issue_id).max_subscriber_id < late.id


def test_audience_is_written_in_growing_ranges_each_queued_in_batches_once_written(
    app: Any, audience: Audience, issue_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.config["BATCH_SIZE"] = 1
    queued: list[tuple[int, int, int, int]] = []

    def send(issue_id: int, first_id: int, last_id: int) -> None:
        written = db.session.scalar(select(func.count()).where(Delivery.issue_id == issue_id))
        queued.append((issue_id, first_id, last_id, written))

    monkeypatch.setattr(tasks.send_batch, "send", send)
    dispatcher.request_send(issue_id)
    dispatcher.start_issue(issue_id)

    ids = sorted(db.session.scalars(select(Delivery.id).where(Delivery.issue_id == issue_id)))
    # The first batch is queued as soon as its rows exist, before the rest is written; the
    # next range is twice as big, written at once and queued as two batches of one.
    assert queued == [
        (issue_id, ids[0], ids[0], 1),
        (issue_id, ids[1], ids[1], 3),
        (issue_id, ids[2], ids[2], 3),
        (issue_id, ids[3], ids[3], 4),
    ]


def test_starting_again_writes_nobody_twice_and_resumes_an_unfinished_audience(
    app: Any, audience: Audience, issue_id: int
) -> None:
    app.config["BATCH_SIZE"] = 2
    dispatcher.request_send(issue_id)
    ceiling = db.session.get(Issue, issue_id).max_subscriber_id
    # A worker died after writing the first range of the audience.
    first = next(snapshot.write_audience(issue_id, ceiling, 2))
    assert first.added == 2

    dispatcher.start_issue(issue_id)
    dispatcher.start_issue(issue_id)

    assert recipients_of(issue_id) == audience.emails
    assert db.session.get(Issue, issue_id).total_count == 4


def test_rewriting_a_written_range_adds_nothing(audience: Audience, issue_id: int) -> None:
    dispatcher.request_send(issue_id)
    dispatcher.start_issue(issue_id)
    ceiling = db.session.get(Issue, issue_id).max_subscriber_id

    again = snapshot.write_range(issue_id, 0, ceiling)
    db.session.commit()

    assert again is not None and again.added == 0
    assert recipients_of(issue_id) == audience.emails


def test_an_issue_with_nobody_to_send_to_is_refused_and_stays_a_draft(
    run_jobs: Callable[[], None], app: Any
) -> None:
    empty = make_list("empty", name="Empty list")
    make_subscriber("waiting@example.com", lists=(empty,), status=_unconfirmed())
    issue_id = make_sendable_issue(empty).id

    with pytest.raises(EmptyAudience) as caught:
        dispatcher.request_send(issue_id)
    run_jobs()

    assert "nobody would receive" in caught.value.message and "Empty list" in caught.value.message
    assert caught.value.field == "lists"
    issue = db.session.get(Issue, issue_id)
    assert issue.status is IssueStatus.DRAFT and issue.slug is None


def test_an_audience_found_empty_when_it_is_fixed_ends_in_draft_not_sent(
    run_jobs: Callable[[], None], app: Any
) -> None:
    lst = make_list("leaving")
    reader = make_subscriber("leaving@example.com", lists=(lst,))
    issue_id = make_sendable_issue(lst).id
    dispatcher.request_send(issue_id)  # someone is there when the editor presses send
    reader.subscriptions[0].status = _unsubscribed()  # … and gone before the snapshot
    db.session.commit()

    run_jobs()

    issue = db.session.get(Issue, issue_id)
    assert issue.status is IssueStatus.DRAFT
    assert issue.finished_at is None and issue.rendered_html is None
    assert issue.send_error and "nobody was left" in issue.send_error
    assert dispatcher.progress(issue_id)["total"] == 0


@pytest.mark.parametrize("status", [IssueStatus.SENDING, IssueStatus.SENT, IssueStatus.CANCELLED])
def test_only_a_draft_or_scheduled_issue_can_be_sent(
    audience: Audience, issue_id: int, status: IssueStatus
) -> None:
    db.session.get(Issue, issue_id).status = status
    db.session.commit()

    with pytest.raises(IssueStateError) as raised:
        dispatcher.request_send(issue_id)

    assert (raised.value.issue_id, raised.value.status, raised.value.action) == (
        issue_id, status.value, "send",
    )


def test_pressing_send_twice_starts_one_send(audience: Audience, issue_id: int) -> None:
    dispatcher.request_send(issue_id)
    with pytest.raises(IssueStateError):
        dispatcher.request_send(issue_id)


def test_a_scheduled_issue_can_be_sent(audience: Audience, issue_id: int) -> None:
    db.session.get(Issue, issue_id).status = IssueStatus.SCHEDULED
    db.session.commit()

    dispatcher.request_send(issue_id)

    assert dispatcher.progress(issue_id)["status"] == "sending"


def test_an_issue_needs_statements_and_lists(app: Any) -> None:
    news = make_list("news")
    no_lists = make_issue((make_statement(),), ())
    no_statements = make_issue((), (news,))

    with pytest.raises(ValidationError) as raised:
        dispatcher.request_send(no_lists.id)
    assert raised.value.field == "lists"
    with pytest.raises(ValidationError) as raised:
        dispatcher.request_send(no_statements.id)
    assert raised.value.field == "statements"
    assert db.session.get(Issue, no_lists.id).status is IssueStatus.DRAFT


def test_sending_an_unknown_issue_is_not_found(app: Any) -> None:
    with pytest.raises(NotFound) as raised:
        dispatcher.request_send(4040)
    assert (raised.value.kind, raised.value.key) == ("issue", 4040)


def test_new_deliveries_are_pending(audience: Audience, issue_id: int) -> None:
    dispatcher.request_send(issue_id)
    dispatcher.start_issue(issue_id)

    assert dispatcher.progress(issue_id) == {
        "status": "sending", "total": 4, "sent": 0, "failed": 0, "pending": 4, "skipped": 0,
    }
    statuses = set(db.session.scalars(select(Delivery.status)))
    assert statuses == {DeliveryStatus.PENDING}


def _unsubscribed() -> Any:
    from newsletter.audience.models import SubscriptionStatus

    return SubscriptionStatus.UNSUBSCRIBED


def _unconfirmed() -> Any:
    from newsletter.audience.models import SubscriptionStatus

    return SubscriptionStatus.UNCONFIRMED


def test_a_template_that_does_not_render_stops_the_send_before_it_starts(
    audience: Audience, issue_id: int
) -> None:
    from newsletter.content.models import Template
    from newsletter.errors import TemplateError

    broken = Template(name="broken", mjml="<mjml><mj-body>{{ oops(</mj-body></mjml>", text="x")
    db.session.add(broken)
    db.session.get(Issue, issue_id).template = broken
    db.session.commit()

    with pytest.raises(TemplateError):
        dispatcher.request_send(issue_id)

    assert dispatcher.progress(issue_id)["status"] == "draft"
