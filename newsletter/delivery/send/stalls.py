"""Noticing sends that stopped moving although work is due, and queueing that work again.

The queue is a convenience, the database the truth: when the broker loses its messages
(Redis flushed or restarted without persistence, a stub broker gone with its process), an
issue stays ``sending`` with rows nobody will claim. Every worker's sweeper watches the
sends under way; one whose count of finished deliveries has not moved for ``STALL_SECONDS``
while rows are due, or whose audience is still unwritten, gets its jobs queued again.
Queueing twice is harmless (claims decide who sends), so several workers may all do it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select

from newsletter.content.models import Issue, IssueStatus
from newsletter.delivery.control import progress
from newsletter.delivery.send import dispatcher
from newsletter.delivery.transactional import recover_overdue
from newsletter.extensions import db

log = logging.getLogger(__name__)

issues = Issue.__table__

#: default seconds without progress after which a send with due rows counts as stalled
STALL_SECONDS = 60.0


class StallWatch:
    """What one process has seen of each send: its finished count, and since when."""

    def __init__(self, stall_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_seconds = stall_seconds
        self._clock = clock
        self._seen: dict[int, tuple[int, float]] = {}

    def check(self) -> list[int]:
        """Look at every sending issue; re-queue the stalled ones and return their ids.
        Overdue transactional messages are queued again too."""
        recover_overdue_transactional(self.stall_seconds)
        sending = [
            int(issue_id)
            for issue_id in db.session.scalars(
                select(issues.c.id).where(issues.c.status == IssueStatus.SENDING)
            )
        ]
        db.session.commit()
        self._seen = {key: value for key, value in self._seen.items() if key in sending}
        return [issue_id for issue_id in sending if self._check_one(issue_id)]

    def _check_one(self, issue_id: int) -> bool:
        now = self._clock()
        done = progress.progress(issue_id).counts.done
        seen = self._seen.get(issue_id)
        if seen is None or seen[0] != done:
            self._seen[issue_id] = (done, now)
            return False
        if now - seen[1] < self.stall_seconds:
            return False
        self._seen[issue_id] = (done, now)  # give the re-queued work a full period
        if not (_audience_unwritten(issue_id) or dispatcher.has_due_rows(issue_id)):
            return False  # waiting for leases or retries: that is progress of its own kind
        queued = dispatcher.recover_issue(issue_id)
        log.warning("issue %s made no progress for %.0f s; %s jobs queued again",
                    issue_id, self.stall_seconds, queued)  # fmt: skip
        return True


def recover_overdue_transactional(stall_seconds: float) -> int:
    """Transactional messages overdue by ``stall_seconds`` and held by nobody: queued again."""

    return recover_overdue(timedelta(seconds=stall_seconds))


def _audience_unwritten(issue_id: int) -> bool:
    total = db.session.scalar(select(issues.c.total_count).where(issues.c.id == issue_id))
    db.session.commit()
    return not total
