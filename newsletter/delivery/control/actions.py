"""Control of a send: schedule, pause, resume, cancel, retry the failed, start due issues.

Every transition is one conditional UPDATE on the issue's status, so two clicks, two
workers or a click racing a worker change it once; the loser gets ``IssueStateError``.
Pause and cancel act between messages: ``send_batch`` stops as soon as the issue is no
longer ``sending`` (the message on the wire still completes and is recorded).

Transitions::

    draft ──schedule──▶ scheduled ──(send_at passed: start_due_issues)──▶ sending
    scheduled ──unschedule──▶ draft
    sending ──pause──▶ paused ──resume──▶ sending
    scheduled / sending / paused ──cancel──▶ cancelled   (pending deliveries: skipped)
    sent ──retry_failed──▶ sending                       (failed deliveries: pending again)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Result

from newsletter import queue
from newsletter.audience.models import Subscriber, SubscriberStatus
from newsletter.content.models import Issue, IssueStatus
from newsletter.delivery.analytics.rollup import fold_bounces
from newsletter.delivery.control import progress
from newsletter.delivery.models import Delivery, DeliveryStatus, ProgressSample
from newsletter.delivery.send import dispatcher
from newsletter.errors import IssueStateError, NewsletterError, NotFound, ValidationError
from newsletter.extensions import db
from newsletter.mail.render import render_issue
from newsletter.models import get_or_raise, utcnow

log = logging.getLogger(__name__)

issues = Issue.__table__
deliveries = Delivery.__table__
subscribers = Subscriber.__table__

#: the reply recorded on deliveries a cancel skipped
CANCELLED_REPLY = "not sent: the issue was cancelled"
#: pending rows marked skipped per transaction when cancelling (keeps each lock short)
CANCEL_CHUNK = 10_000
#: cancelled issues this recent are swept for pending rows that appeared after the cancel
TIDY_WINDOW = timedelta(days=1)

SCHEDULABLE = (IssueStatus.DRAFT, IssueStatus.SCHEDULED)
CANCELLABLE = (IssueStatus.SCHEDULED, IssueStatus.SENDING, IssueStatus.PAUSED)


# --- schedule -----------------------------------------------------------------------------


def schedule(issue_id: int, send_at: datetime) -> Issue:
    """Send the issue at ``send_at`` (an aware datetime); a scheduled issue moves to the new
    time. The issue is rendered now, so a template error shows at once, not at send time.

    :raises NotFound: no such issue.
    :raises ValidationError: ``send_at`` is naive or past (``field="send_at"``), or the
        issue has no statements or lists.
    :raises TemplateError: the template does not render.
    :raises IssueStateError: the issue is sending, paused, sent or cancelled.
    """
    if send_at.tzinfo is None or send_at.utcoffset() is None:
        raise ValidationError("send_at needs a timezone", field="send_at")
    if send_at <= utcnow():
        raise ValidationError(
            f"send_at {send_at.isoformat()} has passed; send it now instead", field="send_at"
        )
    issue = _get_issue(issue_id)
    if issue.status not in SCHEDULABLE:
        raise IssueStateError(issue_id, issue.status.value, "schedule")
    _check_sendable(issue)
    _transition(issue_id, SCHEDULABLE, "schedule", status=IssueStatus.SCHEDULED, send_at=send_at)
    return _fresh(issue_id)


def unschedule(issue_id: int) -> Issue:
    """Take a scheduled issue back to draft (it keeps its content).

    :raises IssueStateError: the issue is not scheduled.
    """
    _get_issue(issue_id)
    _transition(
        issue_id, (IssueStatus.SCHEDULED,), "unschedule", status=IssueStatus.DRAFT, send_at=None
    )
    return _fresh(issue_id)


def start_due_issues(now: datetime | None = None) -> list[int]:
    """Start every scheduled issue whose ``send_at`` has passed; return the ids started here.

    Safe to run in every worker at once: each issue is taken by a conditional UPDATE that
    holds its row until the send has started, so exactly one caller starts it. An issue that
    cannot start (a template broken since it was scheduled) goes back to draft, logged.
    """
    now = now or utcnow()
    due = db.session.scalars(
        select(issues.c.id)
        .where(issues.c.status == IssueStatus.SCHEDULED, issues.c.send_at <= now)
        .order_by(issues.c.send_at, issues.c.id)
    ).all()
    db.session.commit()
    return [issue_id for issue_id in due if _start_scheduled(int(issue_id), now)]


def _start_scheduled(issue_id: int, now: datetime) -> bool:
    # Take the row (a lock until commit on PostgreSQL, the write lock on SQLite) only if it is
    # still scheduled and due: another worker, or an editor's "unschedule", cannot slip in
    # between this check and request_send's own conditional UPDATE.
    taken = db.session.execute(
        update(issues)
        .where(
            issues.c.id == issue_id,
            issues.c.status == IssueStatus.SCHEDULED,
            issues.c.send_at <= now,
        )
        .values(updated_at=utcnow())
    )
    if _rowcount(taken) != 1:
        db.session.rollback()
        return False
    db.session.expire_all()  # request_send must read the row as it is now
    try:
        dispatcher.request_send(issue_id)
    except IssueStateError:
        db.session.rollback()
        return False
    except NewsletterError as error:
        db.session.rollback()
        db.session.execute(
            update(issues)
            .where(issues.c.id == issue_id, issues.c.status == IssueStatus.SCHEDULED)
            .values(status=IssueStatus.DRAFT, updated_at=utcnow(),
                    send_error=f"Not sent at its scheduled time: {error.message}")
        )
        db.session.commit()
        log.warning("scheduled issue %s could not start, back to draft: %s", issue_id,
                    error.message)
        return False
    log.info("scheduled issue %s started", issue_id)
    return True


# --- pause, resume, cancel ----------------------------------------------------------------


def pause(issue_id: int) -> Issue:
    """Stop a send between two messages; ``resume`` continues it where it stopped.

    :raises IssueStateError: the issue is not sending.
    """
    _get_issue(issue_id)
    _transition(issue_id, (IssueStatus.SENDING,), "pause", status=IssueStatus.PAUSED)
    log.info("issue %s paused", issue_id)
    return _fresh(issue_id)


def resume(issue_id: int) -> Issue:
    """Continue a paused send: re-enqueue whatever is left (the audience, pending ranges).

    :raises IssueStateError: the issue is not paused.
    """
    _get_issue(issue_id)
    _transition(issue_id, (IssueStatus.PAUSED,), "resume", status=IssueStatus.SENDING)
    queued = enqueue_rest(issue_id)
    log.info("issue %s resumed: %s jobs queued", issue_id, queued)
    return _fresh(issue_id)


def cancel(issue_id: int) -> Issue:
    """Stop for good: a scheduled issue is never sent; a send stops between two messages and
    every delivery still pending is marked skipped (``last_reply`` says why).

    :raises IssueStateError: the issue is a draft, sent or already cancelled.
    """
    _get_issue(issue_id)
    _transition(issue_id, CANCELLABLE, "cancel", status=IssueStatus.CANCELLED,
                finished_at=utcnow())
    skipped = skip_pending(issue_id)
    dispatcher.refresh_counts(issue_id)
    log.info("issue %s cancelled: %s pending deliveries skipped", issue_id, skipped)
    return _fresh(issue_id)


def skip_pending(issue_id: int) -> int:
    """Mark the issue's pending deliveries skipped, in chunks; return how many."""
    total = 0
    while True:
        chosen = (
            select(deliveries.c.id)
            .where(deliveries.c.issue_id == issue_id, deliveries.c.status == DeliveryStatus.PENDING)
            .order_by(deliveries.c.id)
            .limit(CANCEL_CHUNK)
        )
        result = db.session.execute(
            update(deliveries)
            .where(
                deliveries.c.id.in_(chosen.scalar_subquery()),
                deliveries.c.status == DeliveryStatus.PENDING,
            )
            .values(
                status=DeliveryStatus.SKIPPED,
                lease_until=None,
                next_attempt_at=None,
                last_reply=CANCELLED_REPLY,
            )
        )
        db.session.commit()
        count = _rowcount(result)
        total += count
        if count < CANCEL_CHUNK:
            return total


def tidy_cancelled(now: datetime | None = None) -> int:
    """Skip deliveries that became pending after their issue was cancelled; return how many.

    They come from work already under way at the cancel: an audience still being written, or
    a message whose 4xx was recorded (as "retry later") just after the cancel.
    """
    now = now or utcnow()
    recent = db.session.scalars(
        select(issues.c.id).where(
            issues.c.status == IssueStatus.CANCELLED,
            issues.c.finished_at >= now - TIDY_WINDOW,
        )
    ).all()
    total = 0
    for issue_id in recent:
        has_pending = db.session.scalar(
            select(deliveries.c.id)
            .where(deliveries.c.issue_id == issue_id, deliveries.c.status == DeliveryStatus.PENDING)
            .limit(1)
        )
        if has_pending is not None:
            total += skip_pending(int(issue_id))
            dispatcher.refresh_counts(int(issue_id))
            _forget_samples(int(issue_id))
    db.session.commit()
    return total


# --- retry --------------------------------------------------------------------------------


def retry_failed(issue_id: int) -> int:
    """Send the failed deliveries of a sent issue again; return how many will be retried.

    Addresses that bounced hard (or were blocklisted since) stay failed, and so do people no
    longer subscribed (the send skips them). Each retried delivery starts with fresh
    attempts; its last reply is kept until a new one comes. Nothing to retry: returns 0 and
    the issue stays sent.

    :raises IssueStateError: the issue is not sent.
    """
    issue = _get_issue(issue_id)
    if issue.status is not IssueStatus.SENT:
        raise IssueStateError(issue_id, issue.status.value, "retry failed deliveries")
    db.session.commit()
    # One transaction for the issue and its rows: a crash never leaves a sent issue with
    # pending deliveries, or a sending one with nothing to send.
    moved = db.session.execute(
        update(issues)
        .where(issues.c.id == issue_id, issues.c.status == IssueStatus.SENT)
        .values(status=IssueStatus.SENDING, finished_at=None, updated_at=utcnow())
    )
    if _rowcount(moved) != 1:
        db.session.rollback()
        raise IssueStateError(issue_id, _status_of(issue_id),
                              "retry failed deliveries")
    still_mailable = select(subscribers.c.id).where(
        subscribers.c.status == SubscriberStatus.ACTIVE
    )
    retried = _rowcount(
        db.session.execute(
            update(deliveries)
            .where(
                deliveries.c.issue_id == issue_id,
                deliveries.c.status == DeliveryStatus.FAILED,
                deliveries.c.subscriber_id.in_(still_mailable),
            )
            .values(
                status=DeliveryStatus.PENDING,
                attempts=0,
                next_attempt_at=None,
                lease_until=None,
            )
        )
    )
    if retried == 0:
        db.session.rollback()
        return 0
    db.session.commit()
    enqueue_rest(issue_id)
    log.info("issue %s: retrying %s failed deliveries", issue_id, retried)
    return retried


# --- shared -------------------------------------------------------------------------------


def enqueue_rest(issue_id: int) -> int:
    """Queue what a sending issue still needs (an unfinished audience, every pending range);
    return how many jobs. Duplicates of jobs already queued are harmless (rows are claimed)."""
    total = db.session.scalar(select(issues.c.total_count).where(issues.c.id == issue_id))
    queued = 0
    # Read before start_issue is queued, which queues the ranges it writes (recover_issue).
    ranges = dispatcher.pending_ranges(issue_id, int(current_app.config["BATCH_SIZE"]))
    if not total:
        queue.enqueue("start_issue", issue_id)  # resumes the audience where it stopped
        queued += 1
    for first_id, last_id in ranges:
        queue.enqueue("send_batch", issue_id, first_id, last_id)
    queued += len(ranges)
    db.session.commit()
    if total and not ranges:
        dispatcher.finish_if_done(issue_id)  # paused after the last message
    return queued


def _forget_samples(issue_id: int) -> None:
    """Drop the issue's progress samples: its counts changed after it ended."""

    db.session.execute(delete(ProgressSample.__table__).where(
        ProgressSample.__table__.c.issue_id == issue_id))
    db.session.commit()


def _check_sendable(issue: Issue) -> None:
    """What ``request_send`` would refuse, checked when scheduling rather than at send time."""

    if not issue.items:
        raise ValidationError("an issue needs at least one statement", field="statements")
    if not issue.lists and not issue.segments:
        raise ValidationError("an issue needs at least one list or segment", field="lists")
    render_issue(issue)


def _transition(
    issue_id: int, allowed: Iterable[IssueStatus], action: str, **values: Any
) -> None:
    """Change the issue's row only if its status is one of ``allowed`` (committed).

    :raises IssueStateError: it is not (someone else changed it first).
    """
    result = db.session.execute(
        update(issues)
        .where(issues.c.id == issue_id, issues.c.status.in_(list(allowed)))
        .values(updated_at=utcnow(), **values)
    )
    if _rowcount(result) != 1:
        db.session.rollback()
        raise IssueStateError(issue_id, _status_of(issue_id), action)
    db.session.commit()


def _get_issue(issue_id: int) -> Issue:
    return get_or_raise(Issue, issue_id, "issue")


def _fresh(issue_id: int) -> Issue:
    """The issue as committed (the session's copy may predate a core UPDATE)."""
    db.session.expire_all()
    issue = db.session.get(Issue, issue_id)
    if issue is None:
        raise NotFound("issue", issue_id)
    return issue


def _status_of(issue_id: int) -> str:
    status = db.session.scalar(select(issues.c.status).where(issues.c.id == issue_id))
    if status is None:
        raise NotFound("issue", issue_id)
    return IssueStatus(status).value


def _rowcount(result: Result[Any]) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def sweep() -> None:
    """One tick of the workers' sweeper: start due scheduled issues, skip rows left pending
    by cancelled ones, sample the progress of sends under way, fold new bounce events into
    the analytics counts. Each part failing is logged
    and does not stop the others."""

    for part in (start_due_issues, tidy_cancelled, progress.sample_sending, fold_bounces):
        try:
            part()
        except Exception:  # noqa: BLE001 - a sweep that fails is tried again next tick
            db.session.rollback()
            log.exception("sweep step %s failed", part.__name__)
