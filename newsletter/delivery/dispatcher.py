"""The send: fix the audience, batch it, send each batch, record every outcome.

STUB: interface fixed, body to be written (helper "delivery").
"""

from __future__ import annotations


def request_send(issue_id: int) -> None:
    """Move a draft (or scheduled) issue to sending and enqueue ``start_issue``.

    :raises NotFound: no such issue.
    :raises IssueStateError: the issue is already sending or sent.
    """
    raise NotImplementedError


def start_issue(issue_id: int) -> None:
    """Render once, snapshot the audience into deliveries in id ranges, enqueue batches."""
    raise NotImplementedError


def send_batch(issue_id: int, first_id: int, last_id: int) -> None:
    """Claim and send the pending deliveries in the range; mark the issue sent when done."""
    raise NotImplementedError


def recover_unfinished() -> int:
    """Re-enqueue work for every issue left sending; return how many batches were queued."""
    raise NotImplementedError
