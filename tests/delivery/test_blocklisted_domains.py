"""A send mails nobody at a blocklisted domain (the audience snapshot leaves them out)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from newsletter.audience import blocklist
from newsletter.delivery.models import Delivery
from newsletter.delivery.send import dispatcher
from newsletter.extensions import db
from tests.delivery.helpers import Audience
from tests.factories import make_subscriber
from tests.smtp import CapturingSMTPServer


def test_a_send_leaves_out_every_address_at_a_blocklisted_domain(
    audience: Audience, issue_id: int, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    make_subscriber("eve@Spam.Example", lists=(audience.news,))
    make_subscriber("fay@spam.example", lists=(audience.events,))
    make_subscriber("gus@not-spam.example", lists=(audience.news,))
    blocklist.block_domain("spam.example", reason="a list broker")

    dispatcher.request_send(issue_id)
    run_jobs()

    received = sorted(r.lower() for m in mailbox.messages for r in m.recipients)
    assert received == sorted([*audience.emails, "gus@not-spam.example"])
    assert dispatcher.progress(issue_id)["status"] == "sent"
    assert dispatcher.progress(issue_id)["total"] == len(received)
    assert len(db.session.scalars(select(Delivery)).all()) == len(received)


def test_without_a_blocked_domain_everyone_is_mailed(
    audience: Audience, issue_id: int, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    make_subscriber("eve@spam.example", lists=(audience.news,))
    dispatcher.request_send(issue_id)
    run_jobs()
    received = sorted(r.lower() for m in mailbox.messages for r in m.recipients)
    assert received == sorted([*audience.emails, "eve@spam.example"])
