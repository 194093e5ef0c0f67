"""After a crash or a lost queue the database alone says what is left; nobody is mailed twice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from flask import Flask
from sqlalchemy import select, update

from newsletter.content.models import Issue, IssueStatus
from newsletter.delivery.models import Delivery, DeliveryStatus
from newsletter.delivery.send import dispatcher, outcomes, snapshot
from newsletter.extensions import db
from newsletter.models import utcnow
from tests.delivery.helpers import Audience
from tests.smtp import CapturingSMTPServer


def lose_the_queue(app: Flask) -> None:
    """What a restart does to the stub broker, or a flush to Redis."""
    app.extensions["dramatiq"].flush_all()


def received(mailbox: CapturingSMTPServer) -> Counter[str]:
    return Counter(r.lower() for m in mailbox.messages for r in m.recipients)


def start_and_die_after_one_range(app: Flask, issue_id: int) -> None:
    """Send pressed; the worker wrote the first range of the audience (two rows) and died
    with the queue."""
    app.config["BATCH_SIZE"] = 2
    dispatcher.request_send(issue_id)
    ceiling = db.session.get(Issue, issue_id).max_subscriber_id
    next(snapshot.write_audience(issue_id, ceiling, 2))
    lose_the_queue(app)


def delivery_ids(issue_id: int) -> list[int]:
    return sorted(db.session.scalars(select(Delivery.id).where(Delivery.issue_id == issue_id)))


def test_a_send_whose_start_was_lost_is_started_again(
    app: Flask, audience: Audience, issue_id: int, mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
) -> None:
    dispatcher.request_send(issue_id)
    lose_the_queue(app)

    assert dispatcher.recover_unfinished() == 1
    run_jobs()

    assert sorted(received(mailbox)) == audience.emails
    assert set(received(mailbox).values()) == {1}
    assert dispatcher.progress(issue_id)["status"] == "sent"


def test_an_audience_half_written_is_finished_and_its_written_part_sent(
    app: Flask, audience: Audience, issue_id: int, mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
) -> None:
    start_and_die_after_one_range(app, issue_id)

    assert dispatcher.recover_unfinished() == 2  # start_issue again, and the written batch
    run_jobs()

    assert sorted(received(mailbox)) == audience.emails
    assert set(received(mailbox).values()) == {1}
    assert dispatcher.progress(issue_id)["status"] == "sent"


def test_recovery_queues_no_range_twice_when_its_start_is_taken_at_once(
    app: Flask, audience: Audience, issue_id: int,
    take_starts_at_once: Callable[[], list[tuple[int, int, int]]],
) -> None:
    # A second batch on a range being sent would find its rows leased and wait out the lease.
    start_and_die_after_one_range(app, issue_id)

    batches = take_starts_at_once()
    dispatcher.recover_unfinished()  # its start_issue writes and queues the second range

    ids = delivery_ids(issue_id)
    assert sorted(batches) == [(issue_id, ids[0], ids[1]), (issue_id, ids[2], ids[3])]


def test_rows_of_a_dead_worker_are_sent_once_its_lease_has_run_out(
    app: Flask, audience: Audience, issue_id: int, mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
) -> None:
    dispatcher.request_send(issue_id)
    dispatcher.start_issue(issue_id)
    ids = delivery_ids(issue_id)
    # A worker claimed everything, mailed the first two, recorded them, and was killed.
    outcomes.claim(issue_id, ids[0], ids[-1], limit=10, lease=timedelta(minutes=5))
    for delivery_id in ids[:2]:
        outcomes.record_sent(delivery_id, message_id=f"{delivery_id}@example.org", reply="250 Ok")
    db.session.execute(
        update(Delivery).where(Delivery.id.in_(ids[2:])).values(lease_until=utcnow())
    )
    db.session.commit()
    lose_the_queue(app)

    assert dispatcher.recover_unfinished() == 1
    run_jobs()

    already = set(db.session.scalars(
        select(Delivery.subscriber_id).where(Delivery.id.in_(ids[:2]))
    ))
    assert len(mailbox.messages) == 2  # only the two the dead worker had not sent
    assert dispatcher.progress(issue_id)["sent"] == 4
    assert dispatcher.progress(issue_id)["status"] == "sent"
    assert not already & {
        d.subscriber_id for d in db.session.scalars(
            select(Delivery).where(Delivery.message_id.not_like("%@example.org"))
        )
    }


def test_rows_still_leased_are_looked_at_again_when_the_lease_ends(
    app: Flask, audience: Audience, issue_id: int, mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
) -> None:
    app.config["LEASE_SECONDS"] = 1
    dispatcher.request_send(issue_id)
    dispatcher.start_issue(issue_id)
    ids = delivery_ids(issue_id)
    outcomes.claim(issue_id, ids[0], ids[-1], limit=1, lease=timedelta(seconds=1))
    lose_the_queue(app)

    dispatcher.recover_unfinished()
    run_jobs()  # the batch sends three, then comes back for the fourth after its lease

    assert sorted(received(mailbox)) == audience.emails
    assert set(received(mailbox).values()) == {1}
    assert dispatcher.progress(issue_id)["status"] == "sent"


def test_a_send_that_died_after_its_last_message_is_marked_sent(
    app: Flask, audience: Audience, issue_id: int, mailbox: CapturingSMTPServer
) -> None:
    dispatcher.request_send(issue_id)
    dispatcher.start_issue(issue_id)
    db.session.execute(
        update(Delivery).where(Delivery.issue_id == issue_id).values(status=DeliveryStatus.SENT)
    )
    db.session.commit()
    lose_the_queue(app)

    assert dispatcher.recover_unfinished() == 0

    assert dispatcher.progress(issue_id)["status"] == "sent"
    assert mailbox.messages == []


def test_recovery_leaves_drafts_and_finished_issues_alone(
    app: Flask, audience: Audience, issue_id: int, mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
) -> None:
    assert dispatcher.recover_unfinished() == 0
    dispatcher.request_send(issue_id)
    run_jobs()

    assert dispatcher.recover_unfinished() == 0
    run_jobs()

    assert db.session.get(Issue, issue_id).status is IssueStatus.SENT
    assert len(mailbox.messages) == 4


def test_the_recover_task_does_the_same(
    app: Flask, audience: Audience, issue_id: int, mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
) -> None:
    from newsletter import tasks

    dispatcher.request_send(issue_id)
    lose_the_queue(app)

    tasks.recover.send()
    run_jobs()

    assert sorted(received(mailbox)) == audience.emails
    assert dispatcher.progress(issue_id)["status"] == "sent"


def test_running_recovery_while_a_send_goes_on_mails_nobody_twice(
    app: Flask, audience: Audience, issue_id: int, mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
) -> None:
    app.config.update(BATCH_SIZE=1, LEASE_SECONDS=1)  # a batch finding another's rows waits
    dispatcher.request_send(issue_id)
    for _ in range(3):
        dispatcher.recover_unfinished()  # duplicate start_issue and batches on the queue
    run_jobs()
    dispatcher.recover_unfinished()
    run_jobs()

    assert sorted(received(mailbox)) == audience.emails
    assert set(received(mailbox).values()) == {1}


def test_a_send_asked_for_by_another_process_is_started_by_the_sweep(
    app: Flask, audience: Audience, issue_id: int, mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
) -> None:
    dispatcher.request_send(issue_id)
    lose_the_queue(app)  # `newsletter issues send` ran elsewhere; its queue died with it

    assert dispatcher.recover_unstarted(timedelta(minutes=5)) == 0  # not stale yet
    db.session.execute(
        update(Issue).where(Issue.id == issue_id)
        .values(started_at=utcnow() - timedelta(seconds=20))
    )
    db.session.commit()
    assert dispatcher.recover_unstarted(timedelta(seconds=10)) == 1
    run_jobs()

    assert sorted(received(mailbox)) == audience.emails
    assert dispatcher.recover_unstarted(timedelta(seconds=0)) == 0  # sent: nothing to sweep


def test_the_sweep_leaves_sends_under_way_alone(
    app: Flask, audience: Audience, issue_id: int
) -> None:
    dispatcher.request_send(issue_id)
    ceiling = db.session.get(Issue, issue_id).max_subscriber_id
    next(snapshot.write_audience(issue_id, ceiling, 2))

    assert dispatcher.recover_unstarted(timedelta(seconds=-60)) == 0
