"""The send: fix the audience, batch it, send each batch, record every outcome.

The database is the source of truth; queue messages only say "look at this issue" or "look
at these delivery ids", so running any of them twice, or losing them, is harmless:
``recover_unfinished`` rebuilds the queue from the rows.

Issue states during a send, all in the ``issues`` row:

- ``sending``, ``total_count == 0``: the audience is still being written (``max_subscriber_id``
  is its fixed ceiling once set). ``total_count`` is set only when the last range is written,
  so it doubles as the durable "audience complete" mark.
- ``sending``, ``total_count > 0``: every recipient has a delivery row; batches run.
- ``sent``: every delivery is final (sent, failed or skipped); counts are filled in.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import func, select, update

from newsletter import events, queue
from newsletter.audience.models import MailingList
from newsletter.content.archive import assign_slug, contents_as_sent
from newsletter.content.models import Issue, IssueStatus, issue_lists
from newsletter.delivery.analytics import counters as analytics_counters
from newsletter.delivery.models import Delivery, DeliveryStatus
from newsletter.delivery.send import outcomes, snapshot
from newsletter.delivery.send.sender import BatchSender
from newsletter.delivery.send.sender import issue_status as _status_of
from newsletter.errors import (
    EmptyAudience,
    IssueStateError,
    ValidationError,
)
from newsletter.extensions import db
from newsletter.mail.render import render_issue
from newsletter.models import get_or_raise, utcnow

log = logging.getLogger(__name__)

deliveries = Delivery.__table__
issues = Issue.__table__

#: added to a lease's end before looking again, so the lease has surely run out
LEASE_MARGIN = timedelta(seconds=1)

STARTABLE = (IssueStatus.DRAFT, IssueStatus.SCHEDULED)
#: why an issue whose audience turned out empty when it was fixed is a draft again
EMPTY_AT_SNAPSHOT = (
    "Not sent: nobody was left on its lists when the send started (no confirmed, active "
    "subscriber). It is a draft again; add subscribers or choose other lists, then send."
)


# --- starting -----------------------------------------------------------------------------


def request_send(issue_id: int) -> None:
    """Move a draft (or scheduled) issue to sending and enqueue ``start_issue``.

    The issue is rendered here, once, so a template error reaches the person pressing
    "send" instead of a worker log.

    :raises NotFound: no such issue.
    :raises ValidationError: no statements or no target lists (``field`` names which).
    :raises EmptyAudience: nobody on the target lists would get it.
    :raises TemplateError: the template does not render.
    :raises IssueStateError: the issue is already sending or sent.
    """

    issue = _get_issue(issue_id)
    if issue.status not in STARTABLE:
        raise IssueStateError(issue_id, issue.status.value, "send")
    if not issue.items:
        raise ValidationError("an issue needs at least one statement", field="statements")
    if not issue.lists and not issue.segments:
        raise ValidationError("an issue needs at least one list or segment", field="lists")
    # The audience is the one of this moment, however long the queue takes.
    ceiling = snapshot.audience_ceiling()
    if not snapshot.has_recipients(issue_id, ceiling):
        raise EmptyAudience(issue_id, [lst.name for lst in issue.lists])
    # The permalink is made now, so the mail's "view in browser" link can point to it.
    slug = assign_slug(issue)
    rendered = render_issue(issue)
    # Conditional on the status, so two clicks on "send" start one send.
    started = db.session.execute(
        update(issues)
        .where(issues.c.id == issue_id, issues.c.status.in_(STARTABLE))
        .values(
            status=IssueStatus.SENDING,
            started_at=utcnow(),
            finished_at=None,
            rendered_subject=rendered.subject,
            rendered_html=rendered.html,
            rendered_text=rendered.text,
            archived_contents=contents_as_sent(issue),
            max_subscriber_id=ceiling,
            slug=slug,
            send_error=None,
            total_count=0,
            sent_count=0,
            failed_count=0,
        )
    )
    if snapshot.rowcount(started) != 1:
        db.session.rollback()
        raise IssueStateError(issue_id, _status_of(issue_id).value, "send")
    db.session.commit()
    queue.enqueue("start_issue", issue_id)


def start_issue(issue_id: int) -> None:
    """Render once, snapshot the audience into deliveries in id ranges, enqueue batches.

    Idempotent: a re-run resumes the audience where the last one stopped and enqueues only
    the ranges it writes itself (``recover_unfinished`` re-enqueues older ones).
    """
    issue = db.session.get(Issue, issue_id)
    if issue is None or issue.status is not IssueStatus.SENDING or issue.total_count > 0:
        return
    if issue.rendered_html is None:

        rendered = render_issue(issue)
        issue.rendered_subject = rendered.subject
        issue.rendered_html = rendered.html
        issue.rendered_text = rendered.text
        db.session.commit()
    ceiling = _fix_ceiling(issue_id)
    snapshot.refresh_statistics("subscribers", "subscriptions")
    batch_size = int(current_app.config["BATCH_SIZE"])
    for written in snapshot.write_audience(issue_id, ceiling, batch_size):
        for first_id, last_id in snapshot.split_range(written, batch_size):
            queue.enqueue("send_batch", issue_id, first_id, last_id)
    _complete_audience(issue_id)


def _fix_ceiling(issue_id: int) -> int:
    """Set the audience's ceiling once (the highest subscriber id now) and return it."""
    db.session.execute(
        update(issues)
        .where(issues.c.id == issue_id, issues.c.max_subscriber_id.is_(None))
        .values(max_subscriber_id=snapshot.audience_ceiling())
    )
    db.session.commit()
    ceiling = db.session.scalar(select(issues.c.max_subscriber_id).where(issues.c.id == issue_id))
    return int(ceiling or 0)


def _complete_audience(issue_id: int) -> None:
    """Mark the audience written (``total_count``).

    With nobody in it (everyone left between the request and the snapshot), the issue goes
    back to draft with ``send_error`` saying why: never ``sent``, so never published.
    """
    total = int(
        db.session.scalar(select(func.count()).where(deliveries.c.issue_id == issue_id)) or 0
    )
    if total == 0:
        db.session.execute(
            update(issues)
            .where(issues.c.id == issue_id, issues.c.status == IssueStatus.SENDING)
            .values(
                status=IssueStatus.DRAFT, started_at=None, finished_at=None, total_count=0,
                max_subscriber_id=None, rendered_subject=None, rendered_html=None,
                rendered_text=None, archived_contents=None, send_error=EMPTY_AT_SNAPSHOT,
            )
        )
        db.session.commit()
        log.warning("issue %s had nobody to send to when its audience was fixed; back to "
                    "draft", issue_id)
        return
    db.session.execute(
        update(issues)
        .where(issues.c.id == issue_id, issues.c.status == IssueStatus.SENDING)
        .values(total_count=total)
    )
    db.session.commit()
    log.info("issue %s: audience of %s written", issue_id, total)
    snapshot.refresh_statistics("deliveries")
    finish_if_done(issue_id)


# --- sending ------------------------------------------------------------------------------


def send_batch(issue_id: int, first_id: int, last_id: int) -> None:
    """Claim and send the pending deliveries in the range; mark the issue sent when done.

    Idempotent: only due, unleased pending rows are taken; rows held by another worker or
    waiting for a retry are looked at again later by a delayed copy of this batch.
    """
    issue = db.session.get(Issue, issue_id)
    if issue is None or issue.status is not IssueStatus.SENDING:
        return
    if issue.rendered_html is None:
        log.warning("issue %s has no rendering yet; batch %s-%s waits", issue_id, first_id, last_id)
        return
    list_id, list_name = _list_id(issue, str(current_app.config["BASE_URL"]))
    sender = BatchSender(issue, current_app.config, list_id_header=list_id, list_name=list_name)
    not_before = sender.run(first_id, last_id)
    if sender.interrupted:
        # Shutting down: hand the rest to another worker now (or to recovery at next start).
        queue.enqueue("send_batch", issue_id, first_id, last_id)
        return
    if _status_of(issue_id) is IssueStatus.SENDING:
        _after_batch(issue_id, first_id, last_id, not_before)


def _after_batch(issue_id: int, first_id: int, last_id: int, not_before: datetime | None) -> None:
    """Finish the issue if nothing is pending, else look at the range again when it is due."""
    wake = _next_look(issue_id, first_id, last_id, not_before)
    if wake is None:
        finish_if_done(issue_id)
        return
    delay = max(0, int((wake - utcnow()).total_seconds() * 1000))
    queue.enqueue("send_batch", issue_id, first_id, last_id, delay_ms=delay)


def _next_look(
    issue_id: int, first_id: int, last_id: int, not_before: datetime | None
) -> datetime | None:
    """When rows still pending in the range can next be claimed; None if none are pending."""
    now = utcnow()
    in_range = (
        deliveries.c.issue_id == issue_id,
        deliveries.c.id >= first_id,
        deliveries.c.id <= last_id,
        deliveries.c.status == DeliveryStatus.PENDING,
    )
    pending = db.session.scalar(select(func.count()).where(*in_range))
    if not pending:
        db.session.commit()
        return None
    leases = db.session.scalar(
        select(func.min(deliveries.c.lease_until)).where(*in_range, deliveries.c.lease_until > now)
    )
    retries = db.session.scalar(
        select(func.min(deliveries.c.next_attempt_at)).where(
            *in_range,
            deliveries.c.next_attempt_at > now,
        )
    )
    due_now = db.session.scalar(
        select(func.count()).where(*outcomes.claimable(issue_id, first_id, last_id, now))  # type: ignore[arg-type]
    )
    candidates = [now] if due_now else []
    if leases is not None:
        candidates.append(leases + LEASE_MARGIN)
    if retries is not None:
        candidates.append(retries)
    db.session.commit()
    wake = min(candidates) if candidates else now
    return max(wake, not_before) if not_before is not None else wake


def finish_if_done(issue_id: int) -> bool:
    """Mark the issue sent when its audience is complete and no delivery is pending.

    The audience mark is read before the pending count: rows are committed before the mark,
    so seeing the mark guarantees the count sees every row.
    """
    total = db.session.scalar(
        select(issues.c.total_count).where(
            issues.c.id == issue_id, issues.c.status == IssueStatus.SENDING
        )
    )
    if not total:
        db.session.commit()
        return False
    # Whether any row is pending, not how many: one index probe instead of counting up to a
    # million rows after every batch.
    pending = db.session.scalar(
        select(deliveries.c.id)
        .where(deliveries.c.issue_id == issue_id, deliveries.c.status == DeliveryStatus.PENDING)
        .limit(1)
    )
    if pending is not None:
        db.session.commit()
        return False
    counts = _status_counts(issue_id)
    now = utcnow()
    finished = db.session.execute(
        update(issues)
        .where(issues.c.id == issue_id, issues.c.status == IssueStatus.SENDING)
        .values(
            status=IssueStatus.SENT,
            finished_at=now,
            total_count=counts["total"],
            sent_count=counts["sent"],
            failed_count=counts["failed"],
        )
    )
    done = snapshot.rowcount(finished) > 0
    if done:
        # Once per issue (the update above is conditional), never per recipient.
        events.publish("issue.sent", {"issue_id": issue_id, **counts})
        # The final counts on the analytics timeline: a sent issue's progress is read from
        # its counters from now on, never sampled again.
        analytics_counters.note_progress(
            issue_id, now, sent=counts["sent"], failed=counts["failed"], finished_at=now
        )
    db.session.commit()
    if done:
        log.info("issue %s sent: %s", issue_id, counts)
    return done


# --- recovery and progress ----------------------------------------------------------------


def recover_unfinished() -> int:
    """Re-enqueue work for every issue left sending; return how many jobs were queued.

    Run at start-up and after losing the queue: it trusts only the database. An unfinished
    audience gets ``start_issue`` again (it resumes); every range with pending rows gets a
    ``send_batch`` (rows still leased by a live worker are left to it, and looked at again
    when the lease runs out).
    """
    sending = db.session.scalars(
        select(issues.c.id).where(issues.c.status == IssueStatus.SENDING).order_by(issues.c.id)
    ).all()
    queued = sum(recover_issue(int(issue_id)) for issue_id in sending)
    if queued:
        log.info("recovery: %s jobs queued for %s unfinished issues", queued, len(sending))
    return queued


def recover_issue(issue_id: int) -> int:
    """Re-enqueue the work of one sending issue from its rows; return how many jobs."""
    queued = 0
    total = db.session.scalar(select(issues.c.total_count).where(issues.c.id == issue_id))
    # The ranges written so far, read before ``start_issue`` is queued: a worker may take it
    # at once and queue the batches of the ranges it writes; queued here too, each would run
    # twice at once, and the second, finding its rows leased, would wait out the lease.
    ranges = pending_ranges(issue_id, int(current_app.config["BATCH_SIZE"]))
    if not total:
        queue.enqueue("start_issue", issue_id)
        queued += 1
    for first_id, last_id in ranges:
        queue.enqueue("send_batch", issue_id, first_id, last_id)
    queued += len(ranges)
    if total and not ranges:
        finish_if_done(issue_id)  # died between the last message and the last check
    db.session.commit()
    return queued


def has_due_rows(issue_id: int) -> bool:
    """True when a pending row of the issue could be claimed right now (nobody holds it
    and it is not waiting for a retry)."""
    first_due = db.session.scalar(
        select(deliveries.c.id).where(*outcomes.due(issue_id, utcnow())).limit(1)  # type: ignore[arg-type]
    )
    db.session.commit()
    return first_due is not None


def recover_unstarted(older_than: timedelta) -> int:
    """Enqueue ``start_issue`` again for issues sending for ``older_than`` with no delivery
    written yet; return how many.

    A cheap sweep for the embedded queue: ``newsletter issues send`` in another process puts
    its job on that process's in-memory queue, which the server never sees. Sends under way
    are not touched (they have rows), so this never duplicates their batches.
    """
    stale = utcnow() - older_than
    has_rows = select(deliveries.c.id).where(deliveries.c.issue_id == issues.c.id).exists()
    issue_ids = db.session.scalars(
        select(issues.c.id).where(
            issues.c.status == IssueStatus.SENDING,
            issues.c.total_count == 0,
            issues.c.started_at < stale,
            ~has_rows,
        )
    ).all()
    db.session.commit()
    for issue_id in issue_ids:
        log.info("issue %s is sending but was never started here; starting it", issue_id)
        queue.enqueue("start_issue", issue_id)
    return len(issue_ids)


def pending_ranges(issue_id: int, size: int) -> list[tuple[int, int]]:
    """Delivery-id ranges of at most ``size`` pending rows of the issue, in order."""
    ranges: list[tuple[int, int]] = []
    after = 0
    while True:
        ids = db.session.scalars(
            select(deliveries.c.id)
            .where(
                deliveries.c.issue_id == issue_id,
                deliveries.c.status == DeliveryStatus.PENDING,
                deliveries.c.id > after,
            )
            .order_by(deliveries.c.id)
            .limit(size)
        ).all()
        if not ids:
            return ranges
        ranges.append((int(ids[0]), int(ids[-1])))
        after = int(ids[-1])


def refresh_counts(issue_id: int) -> dict[str, int]:
    """Store the issue's sent and failed counts (and total, once the audience is complete)."""
    counts = _status_counts(issue_id)
    values: dict[str, int] = {"sent_count": counts["sent"], "failed_count": counts["failed"]}
    complete = db.session.scalar(select(issues.c.total_count > 0).where(issues.c.id == issue_id))
    if complete:
        values["total_count"] = counts["total"]
    db.session.execute(update(issues).where(issues.c.id == issue_id).values(**values))
    db.session.commit()
    return counts


def progress(issue_id: int) -> dict[str, Any]:
    """Where a send stands: ``status`` and the ``total``/``sent``/``failed``/``pending``
    (and ``skipped``) delivery counts, read live from the deliveries.

    :raises NotFound: no such issue.
    """
    status = _status_of(issue_id)
    counts = _status_counts(issue_id)
    db.session.commit()
    return {"status": status.value, **counts}


def _status_counts(issue_id: int) -> dict[str, int]:
    rows = db.session.execute(
        select(deliveries.c.status, func.count())
        .where(deliveries.c.issue_id == issue_id)
        .group_by(deliveries.c.status)
    ).all()
    by_status = {DeliveryStatus(status).value: int(count) for status, count in rows}
    counts = {status.value: by_status.get(status.value, 0) for status in DeliveryStatus}
    return {"total": sum(counts.values()), **counts}


# --- helpers ------------------------------------------------------------------------------


def _get_issue(issue_id: int) -> Issue:
    return get_or_raise(Issue, issue_id, "issue")


def _list_id(issue: Issue, base_url: str) -> tuple[str, str]:
    """The RFC 2919 list-id (``slug.host``) of the issue's first list, and its name.

    Kept apart: the message writes the name as a phrase of its own (see
    ``mail.message.list_id_header``), so a name can never shape the id or add a header.
    """
    first = db.session.scalars(
        select(MailingList)
        .join(issue_lists, issue_lists.c.list_id == MailingList.id)
        .where(issue_lists.c.issue_id == issue.id)
        .order_by(MailingList.id)
        .limit(1)
    ).first()
    host = (urlsplit(base_url).hostname or "localhost").encode("idna").decode("ascii")
    if first is None:
        return f"newsletter.{host}", ""
    return f"{first.slug}.{host}", first.name
