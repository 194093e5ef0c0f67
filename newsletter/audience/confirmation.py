"""The double opt-in mail: one message with the confirmation link, queued from a worker.

It leaves through the same door as every other message that is not an issue
(``transactional.queue_message``): a row in the transactional ledger and a
``send_transactional`` job, so it is DKIM-signed, rate-limited, failed over between relays,
recorded, and retried after a 4xx like the rest.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading

from flask import current_app
from flask_babel import gettext
from sqlalchemy import select

from newsletter.audience.models import SubscriberStatus, Subscription, SubscriptionStatus
from newsletter.audience.tokens import confirm_url
from newsletter.delivery.transactional import (
    TransactionalMessage,
    TransactionalStatus,
    queue_message,
)
from newsletter.extensions import db
from newsletter.mail.localized import render_confirmation, speaking
from newsletter.mail.message import make_message_id

#: SQLite has no SELECT … FOR UPDATE; its workers are threads of one process, so a lock of
#: the process keeps two jobs for one subscription from both finding nothing queued
_one_at_a_time = threading.Lock()


def confirmation_subject(list_name: str, language: str | None = None) -> str:
    """The subject line of the confirmation mail, in the subscriber's ``language``."""
    with speaking(language):
        return gettext("Please confirm your subscription to %(list)s", list=list_name)


def send_confirmation(subscriber_id: int, list_id: int) -> None:
    """Queue the mail with the confirmation link for one subscription.

    Does nothing when the subscription is gone, already confirmed or unsubscribed, or the
    address is blocklisted, or while a confirmation for it is still queued, so a retried or
    duplicated job adds no second mail.

    :raises TransactionalQueueError: the broker could not take the message (the job is
        retried; the row is failed, so the retry queues a new one).
    """
    with _one_at_a_time:
        # Locked until queue_message commits: a job for the same subscription in another
        # process waits here, then sees this one's row.
        subscription = locked_subscription(subscriber_id, list_id)
        if (
            subscription is None
            or subscription.status is not SubscriptionStatus.UNCONFIRMED
            or subscription.subscriber.status is not SubscriberStatus.ACTIVE
        ):
            db.session.rollback()
            return
        tag = _subscription_tag(subscriber_id, list_id)
        if _queued(tag):
            db.session.rollback()
            return
        list_name, language = subscription.list.name, subscription.subscriber.language
        text, html = render_confirmation(list_name, confirm_url(subscriber_id, list_id), language)
        domain = make_message_id(str(current_app.config["FROM_ADDRESS"])).partition("@")[2]
        queue_message(
            to=subscription.subscriber.email,
            subject=confirmation_subject(list_name, language),
            text=text,
            html=html,
            message_id=f"{tag}.{secrets.token_hex(8)}@{domain}",
        )


def _subscription_tag(subscriber_id: int, list_id: int) -> str:
    """What starts the Message-ID of every confirmation for this subscription: the same each
    time, and opaque (keyed with the secret key), so it names neither the subscriber nor
    the list to whoever reads the headers."""
    key = str(current_app.config["SECRET_KEY"]).encode()
    subscription = f"confirm:{subscriber_id}:{list_id}".encode()
    return "confirm-" + hmac.new(key, subscription, hashlib.sha256).hexdigest()[:16]


def _queued(tag: str) -> bool:
    """Whether a confirmation with this tag is still waiting to go out."""
    messages = TransactionalMessage.__table__
    found = db.session.scalar(
        select(messages.c.id)
        .where(
            messages.c.status == TransactionalStatus.QUEUED,
            messages.c.message_id.startswith(f"{tag}.", autoescape=True),
        )
        .limit(1)
    )
    return found is not None


def locked_subscription(subscriber_id: int, list_id: int) -> Subscription | None:
    """The subscription, row-locked (``FOR UPDATE``) until this transaction ends: the one
    look-up of the jobs that mail a subscription at most once."""
    return db.session.scalars(
        select(Subscription)
        .where(Subscription.subscriber_id == subscriber_id, Subscription.list_id == list_id)
        .with_for_update()
    ).first()
