"""What state an issue is in and what its counts are: the one answer every caller uses
(the admin pages, the API, the CLI), with the rate over the last minute and the finish.

An issue not started yet (draft, scheduled) has no deliveries, so its counts are zero
without a query.

Cheap enough to poll every few seconds on a 1,000,000-recipient issue:

- counts are taken at most every ``SAMPLE_EVERY`` per issue, however many pages, API
  clients and workers ask; each is stored as a ``ProgressSample`` and the others reuse it;
- while sending (audience complete) only the pending, failed and skipped rows are counted,
  through the ``(issue_id, status)`` index: ``sent`` is the rest of ``total_count``, so the
  count shrinks as the send advances instead of growing;
- the rate compares the newest sample with the oldest of the last ``RATE_WINDOW`` (a few
  rows of ``progress_samples``), never scanning the deliveries for timestamps.

The workers' sweeper samples every sending issue now and then (``sample_sending``), so the
rate is known even when nobody was watching.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select

from newsletter.content.models import Issue, IssueStatus
from newsletter.delivery.analytics.counters import note_progress
from newsletter.delivery.models import Delivery, DeliveryStatus, ProgressSample
from newsletter.errors import NotFound
from newsletter.extensions import db
from newsletter.models import utcnow

issues = Issue.__table__
deliveries = Delivery.__table__
samples = ProgressSample.__table__

#: counts younger than this are reused rather than taken again
SAMPLE_EVERY = timedelta(seconds=2)
#: the rate is measured over about this long
RATE_WINDOW = timedelta(seconds=60)
#: a rate over less than this would be noise: none is given
MIN_RATE_SPAN = timedelta(seconds=3)
#: samples older than this are deleted
KEEP = timedelta(minutes=5)
#: after a send ends, late outcomes (the message on the wire at a cancel) may still land;
#: past this, its counts are final and one sample serves every later look
FINAL_GRACE = timedelta(seconds=30)

NOT_STARTED = (IssueStatus.DRAFT, IssueStatus.SCHEDULED)
FINAL = (IssueStatus.SENT, IssueStatus.CANCELLED)


@dataclass(frozen=True)
class Counts:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    pending: int = 0

    @property
    def total(self) -> int:
        return self.sent + self.failed + self.skipped + self.pending

    @property
    def done(self) -> int:
        """Deliveries with a final outcome."""
        return self.sent + self.failed + self.skipped


@dataclass(frozen=True)
class Progress:
    """Where a send stands."""

    issue_id: int
    status: IssueStatus
    counts: Counts
    #: when the counts were taken
    taken_at: datetime
    #: messages handed to the relay (sent or failed) per second over the last minute;
    #: None when not sending or not measured yet
    rate: float | None = None
    #: when the pending deliveries should be done at the current pace
    eta: datetime | None = None

    @property
    def seconds_left(self) -> float | None:
        if self.eta is None:
            return None
        return max(0.0, (self.eta - self.taken_at).total_seconds())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``status``, the counts, ``rate``, ``eta`` (ISO 8601), ``seconds_left``."""
        return {
            "status": self.status.value,
            "total": self.counts.total,
            "sent": self.counts.sent,
            "failed": self.counts.failed,
            "skipped": self.counts.skipped,
            "pending": self.counts.pending,
            "rate": None if self.rate is None else round(self.rate, 1),
            "eta": None if self.eta is None else self.eta.isoformat(),
            "seconds_left": None if self.seconds_left is None else round(self.seconds_left),
            "counted_at": self.taken_at.isoformat(),
        }


def progress(issue_id: int, *, now: datetime | None = None) -> Progress:
    """The issue's progress: counts (at most ``SAMPLE_EVERY`` old), rate and finish.

    :raises NotFound: no such issue.
    """
    now = now or utcnow()
    row = db.session.execute(_state().where(issues.c.id == issue_id)).first()
    if row is None:
        db.session.commit()
        raise NotFound("issue", issue_id)
    known = _without_counting(row, now)
    if known is not None:
        db.session.commit()
        return known
    return _sampled(issue_id, IssueStatus(row.status), row, now)


def progress_many(issue_ids: list[int], *, now: datetime | None = None) -> dict[int, Progress]:
    """The progress of each of these issues (those that exist), as :func:`progress` gives
    it, in one query for the issues not started or sent: a listing of hundreds of issues
    costs two queries, not a few per issue."""
    now = now or utcnow()
    rows = db.session.execute(_state().where(issues.c.id.in_(issue_ids))).all()
    answers: dict[int, Progress] = {}
    for row in rows:
        known = _without_counting(row, now)
        if known is not None:
            answers[int(row.id)] = known
    db.session.commit()
    for row in rows:
        if int(row.id) not in answers:  # sending, paused, cancelled: few at a time
            answers[int(row.id)] = _sampled(int(row.id), IssueStatus(row.status), row, now)
    return answers


def _state() -> Any:
    return select(
        issues.c.id, issues.c.status, issues.c.total_count, issues.c.finished_at,
        issues.c.sent_count, issues.c.failed_count,
    )


def _without_counting(row: Any, now: datetime) -> Progress | None:
    """The progress of an issue not started (no deliveries) or sent (its counters), with no
    look at the deliveries; None for the others.

    A sent issue's counters are written when the last delivery got its outcome
    (``dispatcher.finish_if_done``): nothing is pending then, so they are its final counts,
    and reading them costs nothing however many deliveries it has. The rest of its total is
    what was skipped.
    """
    status = IssueStatus(row.status)
    if status in NOT_STARTED:
        return Progress(int(row.id), status, Counts(), now)
    if status is not IssueStatus.SENT:
        return None
    total = int(row.total_count or 0)
    sent, failed = int(row.sent_count or 0), int(row.failed_count or 0)
    if total < sent + failed:
        return None  # counters from before they were kept at the finish: count
    counts = Counts(sent=sent, failed=failed, skipped=total - sent - failed, pending=0)
    taken_at = _aware(row.finished_at) if row.finished_at is not None else now
    return Progress(int(row.id), status, counts, taken_at)


def _sampled(issue_id: int, status: IssueStatus, row: Any, now: datetime) -> Progress:
    """Progress from the latest sample, or from counts taken now when it is stale."""
    latest = _latest_sample(issue_id)
    if latest is not None and _still_good(latest[0], status, row.finished_at, now):
        taken_at, counts = latest
    else:
        taken_at, counts = now, _count(issue_id, status, int(row.total_count or 0))
        _store(issue_id, taken_at, counts)
        # the same counts, kept by the minute for the issue's analytics
        note_progress(issue_id, taken_at, sent=counts.sent, failed=counts.failed,
                      finished_at=row.finished_at if status in FINAL else None)  # fmt: skip
    rate = eta = None
    if status is IssueStatus.SENDING:
        rate, eta = _pace(issue_id, taken_at, counts)
    db.session.commit()
    return Progress(issue_id, status, counts, taken_at, rate=rate, eta=eta)


def sample_sending(now: datetime | None = None) -> int:
    """Take counts for every sending issue whose last sample is stale; return how many.

    Run by the sweeper, so the rate has a history before anyone opens the page.
    """
    now = now or utcnow()
    sending = db.session.scalars(
        select(issues.c.id).where(issues.c.status == IssueStatus.SENDING)
    ).all()
    db.session.commit()
    for issue_id in sending:
        progress(int(issue_id), now=now)
    return len(sending)


def _still_good(
    taken_at: datetime, status: IssueStatus, finished_at: datetime | None, now: datetime
) -> bool:
    """Whether the latest sample may stand for the counts now."""
    if status in FINAL:
        # Taken before the end, it may still show pending rows: never reuse it then.
        if finished_at is None or taken_at < finished_at:
            return False
        return now - taken_at < SAMPLE_EVERY or taken_at >= finished_at + FINAL_GRACE
    return now - taken_at < SAMPLE_EVERY


def _latest_sample(issue_id: int) -> tuple[datetime, Counts] | None:
    row = db.session.execute(
        select(samples.c.taken_at, samples.c.sent, samples.c.failed, samples.c.skipped,
               samples.c.pending)
        .where(samples.c.issue_id == issue_id)
        .order_by(samples.c.taken_at.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return _aware(row[0]), Counts(*(int(value) for value in row[1:]))


def _count(issue_id: int, status: IssueStatus, total_count: int) -> Counts:
    """Counts by outcome; while sending with the audience complete, without the sent rows."""
    where = [deliveries.c.issue_id == issue_id]
    derive_sent = status is IssueStatus.SENDING and total_count > 0
    if derive_sent:
        # IN, not !=: a range of the (issue_id, status) index, not a filter over every row.
        where.append(
            deliveries.c.status.in_(
                [DeliveryStatus.PENDING, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED]
            )
        )
    rows = db.session.execute(
        select(deliveries.c.status, func.count()).where(*where).group_by(deliveries.c.status)
    ).all()
    by_status = {DeliveryStatus(status_): int(count) for status_, count in rows}
    failed = by_status.get(DeliveryStatus.FAILED, 0)
    skipped = by_status.get(DeliveryStatus.SKIPPED, 0)
    pending = by_status.get(DeliveryStatus.PENDING, 0)
    if derive_sent:
        # Rows are never added once the audience is complete; a subscriber deleted since
        # takes their row along, hence the floor.
        sent = max(0, total_count - failed - skipped - pending)
    else:
        sent = by_status.get(DeliveryStatus.SENT, 0)
    return Counts(sent=sent, failed=failed, skipped=skipped, pending=pending)


def _store(issue_id: int, taken_at: datetime, counts: Counts) -> None:
    db.session.execute(
        insert(samples).values(
            issue_id=issue_id,
            taken_at=taken_at,
            sent=counts.sent,
            failed=counts.failed,
            skipped=counts.skipped,
            pending=counts.pending,
        )
    )
    db.session.execute(
        delete(samples).where(samples.c.issue_id == issue_id, samples.c.taken_at < taken_at - KEEP)
    )


def _pace(
    issue_id: int, taken_at: datetime, counts: Counts
) -> tuple[float | None, datetime | None]:
    """Messages per second since the oldest sample of the window, and the finish it implies."""
    base = db.session.execute(
        select(samples.c.taken_at, samples.c.sent, samples.c.failed, samples.c.skipped,
               samples.c.pending)
        .where(
            samples.c.issue_id == issue_id,
            samples.c.taken_at >= taken_at - RATE_WINDOW,
            samples.c.taken_at <= taken_at - MIN_RATE_SPAN,
        )
        .order_by(samples.c.taken_at)
        .limit(1)
    ).first()
    if base is None:
        return None, None
    then = Counts(*(int(value) for value in base[1:]))
    seconds = (taken_at - _aware(base[0])).total_seconds()
    rate = max(0.0, (counts.sent + counts.failed - then.sent - then.failed) / seconds)
    finishing = max(0.0, (counts.done - then.done) / seconds)
    if counts.pending == 0:
        return rate, taken_at
    if finishing <= 0:
        return rate, None  # nothing finished lately (a relay down, all waiting to retry)
    return rate, taken_at + timedelta(seconds=counts.pending / finishing)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
