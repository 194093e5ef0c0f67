"""Controlling a send: schedule, start when due (once), pause, resume, cancel, retry failed."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import insert, select, update

from newsletter.audience.models import Subscriber, SubscriberStatus
from newsletter.content.models import Issue, IssueStatus, issue_lists
from newsletter.delivery.control import actions as control
from newsletter.delivery.control import timezones
from newsletter.delivery.models import Delivery, DeliveryStatus
from newsletter.delivery.send import dispatcher, snapshot
from newsletter.errors import IssueStateError, ValidationError
from newsletter.extensions import db
from newsletter.models import utcnow
from tests.delivery.helpers import Audience, FaultySMTPServer, deliveries_by_email
from tests.factories import make_subscriber
from tests.smtp import CapturingSMTPServer


def status_of(issue_id: int) -> IssueStatus:
    db.session.commit()
    return IssueStatus(db.session.scalar(select(Issue.status).where(Issue.id == issue_id)))


def received(server: CapturingSMTPServer | FaultySMTPServer) -> Counter[str]:
    """How many messages each address got."""
    return Counter(r for m in server.messages for r in m.recipients)


def soon(seconds: int = 3600) -> datetime:
    return utcnow() + timedelta(seconds=seconds)


# --- schedule -----------------------------------------------------------------------------


def test_a_scheduled_issue_starts_when_due_and_reaches_everyone_once(
    audience: Audience, issue_id: int, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    send_at = soon()
    issue = control.schedule(issue_id, send_at)
    assert (issue.status, issue.send_at) == (IssueStatus.SCHEDULED, send_at)

    assert control.start_due_issues(now=send_at - timedelta(seconds=1)) == []
    run_jobs()
    assert mailbox.messages == []
    assert status_of(issue_id) is IssueStatus.SCHEDULED

    assert control.start_due_issues(now=send_at + timedelta(seconds=1)) == [issue_id]
    assert control.start_due_issues(now=send_at + timedelta(seconds=2)) == []
    run_jobs()

    assert status_of(issue_id) is IssueStatus.SENT
    assert received(mailbox) == Counter(audience.emails)


def test_schedule_takes_the_editors_local_time(issue_id: int) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    next_year = utcnow().year + 1
    send_at = timezones.parse_when(f"{next_year}-07-01 09:30", berlin)

    control.schedule(issue_id, send_at)

    stored = db.session.get(Issue, issue_id).send_at
    assert stored == datetime(next_year, 7, 1, 7, 30, tzinfo=UTC)  # CEST is UTC+2
    assert timezones.in_zone(stored, "Europe/Berlin").strftime("%H:%M") == "09:30"


def test_rescheduling_moves_the_time_and_unscheduling_makes_a_draft(issue_id: int) -> None:
    control.schedule(issue_id, soon(3600))
    later = soon(7200)
    assert control.schedule(issue_id, later).send_at == later

    issue = control.unschedule(issue_id)

    assert (issue.status, issue.send_at) == (IssueStatus.DRAFT, None)
    assert control.start_due_issues(now=later + timedelta(seconds=1)) == []
    with pytest.raises(IssueStateError):
        control.unschedule(issue_id)


def test_schedule_refuses_a_past_or_naive_time(issue_id: int) -> None:
    with pytest.raises(ValidationError) as past:
        control.schedule(issue_id, utcnow() - timedelta(minutes=1))
    assert past.value.field == "send_at"
    with pytest.raises(ValidationError) as naive:
        control.schedule(issue_id, datetime(2999, 1, 1, 9, 0))
    assert naive.value.field == "send_at"
    assert status_of(issue_id) is IssueStatus.DRAFT


def test_schedule_refuses_an_issue_without_lists(audience: Audience, issue_id: int) -> None:
    db.session.execute(issue_lists.delete().where(issue_lists.c.issue_id == issue_id))
    db.session.commit()
    db.session.expire_all()

    with pytest.raises(ValidationError) as error:
        control.schedule(issue_id, soon())

    assert error.value.field == "lists"
    assert status_of(issue_id) is IssueStatus.DRAFT


def test_an_issue_already_sending_cannot_be_scheduled(issue_id: int) -> None:
    dispatcher.request_send(issue_id)

    with pytest.raises(IssueStateError):
        control.schedule(issue_id, soon())


def test_a_due_issue_that_cannot_start_goes_back_to_draft(
    issue_id: int, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    send_at = soon()
    control.schedule(issue_id, send_at)
    # Its lists were removed after it was scheduled: it cannot be sent.
    db.session.execute(issue_lists.delete().where(issue_lists.c.issue_id == issue_id))
    db.session.commit()

    assert control.start_due_issues(now=send_at + timedelta(seconds=1)) == []
    run_jobs()

    assert status_of(issue_id) is IssueStatus.DRAFT
    assert control.start_due_issues(now=send_at + timedelta(seconds=2)) == []
    assert mailbox.messages == []


def test_several_workers_start_a_due_issue_exactly_once(app: Flask, issue_id: int) -> None:
    send_at = soon()
    control.schedule(issue_id, send_at)
    db.session.remove()
    started: list[int] = []
    errors: list[BaseException] = []
    gate = threading.Barrier(4)

    def worker() -> None:
        with app.app_context():
            try:
                gate.wait()
                started.extend(control.start_due_issues(now=send_at + timedelta(seconds=1)))
            except BaseException as error:  # noqa: BLE001 - reported by the test below
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert started == [issue_id]
    assert status_of(issue_id) is IssueStatus.SENDING


# --- pause and resume ---------------------------------------------------------------------


def test_a_paused_send_sends_nothing_until_resumed_then_reaches_everyone_once(
    audience: Audience, issue_id: int, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    dispatcher.request_send(issue_id)
    dispatcher.start_issue(issue_id)  # the batches are queued, not run yet

    assert control.pause(issue_id).status is IssueStatus.PAUSED
    run_jobs()

    assert mailbox.messages == []
    assert status_of(issue_id) is IssueStatus.PAUSED
    assert all(d.status is DeliveryStatus.PENDING for d in deliveries_by_email(issue_id).values())

    assert control.resume(issue_id).status is IssueStatus.SENDING
    run_jobs()

    assert status_of(issue_id) is IssueStatus.SENT
    assert received(mailbox) == Counter(audience.emails)


def test_pause_mid_send_lets_the_message_on_the_wire_finish_and_stops_the_rest(
    app: Flask, audience: Audience, issue_id: int, faulty_smtp: FaultySMTPServer,
    run_jobs: Callable[[], None],
) -> None:
    # One recipient per batch, so the workers look at the status before each message. Ten
    # more readers: with two worker threads, up to four messages can be on their way before
    # the pause lands (two passed their status check just before it), and some must remain.
    app.config.update(SMTP_URL=faulty_smtp.url, BATCH_SIZE=1)
    extra = [make_subscriber(f"more{n}@example.com", lists=(audience.news,)).email
             for n in range(10)]  # fmt: skip
    db.session.commit()
    faulty_smtp.handler.hold_after = 1

    def pause_while_held() -> None:
        assert faulty_smtp.handler.held.wait(30)
        with app.app_context():
            control.pause(issue_id)
            db.session.remove()
        faulty_smtp.handler.released.set()

    pauser = threading.Thread(target=pause_while_held)
    pauser.start()
    dispatcher.request_send(issue_id)
    run_jobs()
    pauser.join(30)

    records = deliveries_by_email(issue_id)
    sent = sorted(email for email, d in records.items() if d.status is DeliveryStatus.SENT)
    pending = sorted(email for email, d in records.items() if d.status is DeliveryStatus.PENDING)
    assert status_of(issue_id) is IssueStatus.PAUSED
    assert len(sent) >= 2  # the first, and the one held on the wire at the pause
    assert pending, "the pause should leave someone waiting"
    assert sorted(received(faulty_smtp)) == sent

    control.resume(issue_id)
    run_jobs()

    assert status_of(issue_id) is IssueStatus.SENT
    assert received(faulty_smtp) == Counter(audience.emails + extra)


def test_resume_finishes_an_audience_paused_while_being_written(
    app: Flask, audience: Audience, issue_id: int, mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
) -> None:
    dispatcher.request_send(issue_id)
    app.extensions["dramatiq"].flush_all()  # the start job was taken by a worker…
    ceiling = db.session.get(Issue, issue_id).max_subscriber_id
    next(snapshot.write_audience(issue_id, ceiling, 2))  # …which wrote one range of two
    control.pause(issue_id)

    control.resume(issue_id)
    run_jobs()

    assert status_of(issue_id) is IssueStatus.SENT
    assert db.session.get(Issue, issue_id).total_count == len(audience.recipients)
    assert received(mailbox) == Counter(audience.emails)


def test_resume_queues_no_range_twice_when_its_start_is_taken_at_once(
    app: Flask, audience: Audience, issue_id: int,
    take_starts_at_once: Callable[[], list[tuple[int, int, int]]],
) -> None:
    app.config["BATCH_SIZE"] = 2
    dispatcher.request_send(issue_id)
    app.extensions["dramatiq"].flush_all()
    ceiling = db.session.get(Issue, issue_id).max_subscriber_id
    next(snapshot.write_audience(issue_id, ceiling, 2))
    control.pause(issue_id)

    batches = take_starts_at_once()
    control.resume(issue_id)  # its start_issue writes and queues the second range

    ids = sorted(deliveries_by_email(issue_id)[email].id for email in audience.emails)
    assert sorted(batches) == [(issue_id, ids[0], ids[1]), (issue_id, ids[2], ids[3])]


def test_only_a_sending_issue_pauses_and_only_a_paused_one_resumes(issue_id: int) -> None:
    with pytest.raises(IssueStateError) as error:
        control.pause(issue_id)
    assert "draft" in error.value.message
    with pytest.raises(IssueStateError):
        control.resume(issue_id)
    dispatcher.request_send(issue_id)
    with pytest.raises(IssueStateError):
        control.resume(issue_id)
    control.pause(issue_id)
    with pytest.raises(IssueStateError):
        control.pause(issue_id)


# --- cancel -------------------------------------------------------------------------------


def test_a_cancelled_send_skips_everyone_left_and_says_why(
    audience: Audience, issue_id: int, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    dispatcher.request_send(issue_id)
    dispatcher.start_issue(issue_id)

    issue = control.cancel(issue_id)
    run_jobs()

    assert issue.status is IssueStatus.CANCELLED and issue.finished_at is not None
    assert mailbox.messages == []
    records = deliveries_by_email(issue_id)
    assert {d.status for d in records.values()} == {DeliveryStatus.SKIPPED}
    assert {d.last_reply for d in records.values()} == {control.CANCELLED_REPLY}
    with pytest.raises(IssueStateError):
        control.resume(issue_id)


def test_a_cancelled_schedule_never_sends(
    issue_id: int, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    send_at = soon()
    control.schedule(issue_id, send_at)

    control.cancel(issue_id)

    assert control.start_due_issues(now=send_at + timedelta(seconds=1)) == []
    run_jobs()
    assert mailbox.messages == []
    assert status_of(issue_id) is IssueStatus.CANCELLED


def test_a_paused_send_can_be_cancelled_but_not_a_draft_or_a_sent_issue(
    issue_id: int, run_jobs: Callable[[], None]
) -> None:
    with pytest.raises(IssueStateError):
        control.cancel(issue_id)
    dispatcher.request_send(issue_id)
    control.pause(issue_id)
    assert control.cancel(issue_id).status is IssueStatus.CANCELLED
    with pytest.raises(IssueStateError):
        control.cancel(issue_id)


def test_rows_left_pending_after_a_cancel_are_swept_to_skipped(
    audience: Audience, issue_id: int, run_jobs: Callable[[], None]
) -> None:
    dispatcher.request_send(issue_id)
    control.cancel(issue_id)
    # A start already under way writes the audience after the cancel.
    ceiling = db.session.get(Issue, issue_id).max_subscriber_id
    list(snapshot.write_audience(issue_id, ceiling, 500))
    assert DeliveryStatus.PENDING in {d.status for d in deliveries_by_email(issue_id).values()}

    assert control.tidy_cancelled() == len(audience.recipients)

    assert {d.status for d in deliveries_by_email(issue_id).values()} == {DeliveryStatus.SKIPPED}
    assert control.tidy_cancelled() == 0


# --- retry failed -------------------------------------------------------------------------


def test_retry_failed_resends_the_failures_but_not_hard_bounces(
    audience: Audience, issue_id: int, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    mailbox.handler.refuse["ada@example.com"] = "552 5.3.4 mailbox full"
    mailbox.handler.refuse["bo@example.com"] = "550 5.1.1 no such user"
    dispatcher.request_send(issue_id)
    run_jobs()
    assert status_of(issue_id) is IssueStatus.SENT
    mailbox.handler.refuse.clear()

    assert control.retry_failed(issue_id) == 1
    assert status_of(issue_id) is IssueStatus.SENDING
    run_jobs()

    records = deliveries_by_email(issue_id)
    assert status_of(issue_id) is IssueStatus.SENT
    assert (records["ada@example.com"].status, records["ada@example.com"].attempts) == (
        DeliveryStatus.SENT, 0,
    )
    assert records["bo@example.com"].status is DeliveryStatus.FAILED  # blocklisted: not again
    assert received(mailbox) == Counter(
        {"ada@example.com": 1, "cy@example.com": 1, "di@example.com": 1}
    )
    assert db.session.get(Issue, issue_id).failed_count == 1


def test_retry_failed_with_nothing_to_retry_leaves_the_issue_sent(
    issue_id: int, run_jobs: Callable[[], None]
) -> None:
    with pytest.raises(IssueStateError):
        control.retry_failed(issue_id)
    dispatcher.request_send(issue_id)
    run_jobs()

    assert control.retry_failed(issue_id) == 0

    assert status_of(issue_id) is IssueStatus.SENT


def test_retry_failed_resets_attempts_of_a_4xx_that_ran_out(
    app: Flask, audience: Audience, issue_id: int, faulty_smtp: FaultySMTPServer,
    run_jobs: Callable[[], None],
) -> None:
    app.config.update(SMTP_URL=faulty_smtp.url, RETRY_BACKOFF_SECONDS=0, MAX_ATTEMPTS=2)
    faulty_smtp.handler.flaky["cy@example.com"] = 2
    dispatcher.request_send(issue_id)
    run_jobs()
    assert deliveries_by_email(issue_id)["cy@example.com"].status is DeliveryStatus.FAILED

    control.retry_failed(issue_id)
    run_jobs()

    record = deliveries_by_email(issue_id)["cy@example.com"]
    assert (record.status, record.attempts) == (DeliveryStatus.SENT, 0)
    assert len(faulty_smtp.to("cy@example.com")) == 1


def test_the_sweep_starts_due_issues(
    audience: Audience, issue_id: int, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    control.schedule(issue_id, soon())
    db.session.execute(
        update(Issue).where(Issue.id == issue_id).values(send_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()

    control.sweep()
    run_jobs()

    assert status_of(issue_id) is IssueStatus.SENT
    assert received(mailbox) == Counter(audience.emails)


def test_the_sweep_skips_rows_of_cancelled_issues_and_keeps_going(
    audience: Audience, issue_id: int
) -> None:
    dispatcher.request_send(issue_id)
    control.cancel(issue_id)
    subscriber = db.session.scalars(select(Subscriber.id).limit(1)).one()
    db.session.execute(
        insert(Delivery.__table__).values(
            issue_id=issue_id, subscriber_id=subscriber, status=DeliveryStatus.PENDING,
            attempts=0,
        )
    )
    db.session.commit()

    control.sweep()

    assert {d.status for d in deliveries_by_email(issue_id).values()} == {DeliveryStatus.SKIPPED}
    assert db.session.get(Subscriber, subscriber).status is SubscriberStatus.ACTIVE


def test_the_workers_sweeper_starts_a_due_issue(app: Flask, issue_id: int) -> None:
    from newsletter.delivery.workers import start_sweeper

    control.schedule(issue_id, soon())
    db.session.execute(
        update(Issue).where(Issue.id == issue_id).values(send_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
    app.config["SWEEP_SECONDS"] = 0.05
    sweeper = start_sweeper(app, unstarted=False)
    try:
        deadline = utcnow() + timedelta(seconds=10)
        while status_of(issue_id) is IssueStatus.SCHEDULED and utcnow() < deadline:
            db.session.remove()
            threading.Event().wait(0.05)  # the sweeper is a timer: nothing to join
    finally:
        sweeper.stop()
        sweeper.join(5)

    assert status_of(issue_id) is IssueStatus.SENDING


def test_progress_after_the_end_never_shows_counts_from_before_it(
    audience: Audience, issue_id: int, run_jobs: Callable[[], None]
) -> None:
    from newsletter.delivery.control import progress

    dispatcher.request_send(issue_id)
    dispatcher.start_issue(issue_id)
    during = progress.progress(issue_id)
    assert (during.status, during.counts.pending) == (IssueStatus.SENDING, 4)

    run_jobs()
    after = progress.progress(issue_id)

    assert (after.status, after.counts.sent, after.counts.pending) == (IssueStatus.SENT, 4, 0)
    assert after.rate is None and after.eta is None
