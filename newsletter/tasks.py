"""Dramatiq actors: thin, idempotent, taking ids; the work is in delivery/ and audience/."""

from __future__ import annotations

import dramatiq

from newsletter.audience import confirmation, import_jobs, welcome
from newsletter.content import feeds
from newsletter.delivery import transactional
from newsletter.delivery.bounces import poller as bounce_poller
from newsletter.delivery.send import dispatcher
from newsletter.delivery.webhooks import service as webhooks


@dramatiq.actor(queue_name="default", max_retries=10)
def send_confirmation(subscriber_id: int, list_id: int) -> None:
    """Queue the double opt-in confirmation mail for one subscription (``send_transactional``
    sends it)."""
    confirmation.send_confirmation(subscriber_id, list_id)


@dramatiq.actor(queue_name="default", max_retries=10)
def send_welcome(subscriber_id: int, list_id: int) -> None:
    """Queue a list's welcome mail for a subscription just confirmed (once per confirmation)."""
    welcome.send_welcome(subscriber_id, list_id)


# Long jobs: a big audience or a slow relay may take a while (the default limit is 10 min).
HOUR_MS = 3_600_000


@dramatiq.actor(queue_name="delivery", max_retries=20, time_limit=HOUR_MS)
def start_issue(issue_id: int) -> None:
    """Render the issue, fix its audience into deliveries and enqueue the batches."""
    dispatcher.start_issue(issue_id)


@dramatiq.actor(
    queue_name="delivery", max_retries=20, min_backoff=1000, max_backoff=60_000, time_limit=HOUR_MS
)
def send_batch(issue_id: int, first_id: int, last_id: int) -> None:
    """Send the pending deliveries of an issue with ids in ``[first_id, last_id]``."""
    dispatcher.send_batch(issue_id, first_id, last_id)


@dramatiq.actor(queue_name="default", max_retries=3)
def recover() -> None:
    """Re-enqueue whatever the database says is unfinished (after a crash or broker loss)."""
    dispatcher.recover_unfinished()
    transactional.recover_queued()
    import_jobs.recover_stalled()
    webhooks.enqueue_stalled()


# Its own queue, consumed in every worker process by a thread of its own (broker.py), so a
# transactional message never waits behind bulk batches. 4xx retries are scheduled by
# transactional.send from the row; Dramatiq's retries only cover failures outside SMTP.
@dramatiq.actor(queue_name="transactional", max_retries=10, min_backoff=1000, max_backoff=60_000)
def send_transactional(tx_id: int) -> None:
    """Send one queued transactional message (at most once) and record the outcome."""
    transactional.send(tx_id)


# An import commits chunk by chunk and resumes from its row: a retry goes on where it stopped.
@dramatiq.actor(queue_name="default", max_retries=3, time_limit=6 * HOUR_MS)
def run_import(job_id: int) -> None:
    """Import an uploaded file (from where its job got to)."""
    import_jobs.run_job(job_id)


# A failed poll is recorded on the feed with its own backoff (feeds.poll_feed), so Dramatiq
# does not retry it as well.
@dramatiq.actor(queue_name="default", max_retries=0)
def poll_feed(feed_id: int) -> None:
    """Poll one feed: its new entries become statements (and maybe draft issues)."""
    feeds.poll_feed(feed_id)


# The sweep queues one poll per BOUNCE_POLL_SECONDS; a failed one is simply the next one's
# to do (nothing was removed from the mailbox), so Dramatiq does not retry it.
@dramatiq.actor(queue_name="default", max_retries=0, time_limit=HOUR_MS)
def poll_bounce_mailbox() -> None:
    """Read the bounce mailbox (IMAP or Maildir) once; each message goes to the policy."""
    bounce_poller.poll()
# Retries on the endpoint's schedule are queued by webhooks.deliver from the row (with the
# log of each attempt); Dramatiq's own retries only cover failures outside the POST.
@dramatiq.actor(queue_name="default", max_retries=5, min_backoff=1000, max_backoff=60_000)
def deliver_webhook(message_id: int) -> None:
    """POST one webhook message to its endpoint, signed, if it is due."""
    webhooks.deliver(message_id)


ACTORS = (
    send_confirmation, send_welcome, start_issue, send_batch, recover, send_transactional,
    run_import, poll_feed, poll_bounce_mailbox, deliver_webhook,
)
