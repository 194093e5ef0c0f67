"""The welcome mail: once per confirmation, for lists that have it turned on.

``subscriptions.confirm`` enqueues ``send_welcome`` after its commit; the job writes the mail
from ``templates/email/welcome.{mjml,txt}`` in the subscriber's language, with the list's
own subject and intro text when it has them, and queues it through the one door
(``transactional.queue_message``).

Exactly once per confirmation, whatever the retries: the Message-ID of the mail starts with
a tag made of the subscription and the moment it was confirmed (keyed, so it names neither),
and a job that finds a message with that tag in the ledger (queued or sent) does nothing.
A subscription confirmed again later (after leaving) is a new confirmation and a new mail.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading

from flask import current_app
from flask_babel import gettext
from sqlalchemy import select

from newsletter.audience.confirmation import locked_subscription
from newsletter.audience.models import SubscriberStatus, Subscription, SubscriptionStatus
from newsletter.audience.tokens import manage_url
from newsletter.delivery.transactional import (
    TransactionalMessage,
    TransactionalStatus,
    queue_message,
)
from newsletter.extensions import db
from newsletter.mail.localized import render_subscriber_mail, speaking
from newsletter.mail.message import make_message_id

#: SQLite has no SELECT … FOR UPDATE: two worker threads of one process take turns here
_one_at_a_time = threading.Lock()


def welcome_subject(list_name: str, custom: str, language: str | None) -> str:
    """The list's own subject, else the built-in one in the subscriber's language."""
    if custom.strip():
        return custom.strip()
    with speaking(language):
        return gettext("Welcome to %(list)s", list=list_name)


def intro_paragraphs(text: str) -> list[str]:
    """The list's intro text as paragraphs (blank lines between them), lines joined."""
    paragraphs = [" ".join(part.split()) for part in text.replace("\r\n", "\n").split("\n\n")]
    return [paragraph for paragraph in paragraphs if paragraph]


def send_welcome(subscriber_id: int, list_id: int) -> None:
    """Queue the welcome mail for a confirmed subscription, at most once per confirmation.

    Does nothing when the subscription is gone or not confirmed, the list has no welcome
    mail, the address is blocklisted, or the mail for this confirmation is in the ledger.

    :raises TransactionalQueueError: the broker could not take it (the job is retried; the
        row is failed, so the retry queues a new one).
    """
    with _one_at_a_time:
        subscription = locked_subscription(subscriber_id, list_id)
        if (
            subscription is None
            or subscription.status is not SubscriptionStatus.CONFIRMED
            or subscription.confirmed_at is None
            or not subscription.list.welcome_enabled
            or subscription.subscriber.status is not SubscriberStatus.ACTIVE
        ):
            db.session.rollback()
            return
        tag = _confirmation_tag(subscription)
        if _already_queued_or_sent(tag):
            db.session.rollback()
            return
        subscriber, lst = subscription.subscriber, subscription.list
        subject = welcome_subject(lst.name, lst.welcome_subject, subscriber.language)
        text, html = render_subscriber_mail(
            "welcome",
            subscriber.language,
            {
                "subject": subject,
                "list_name": lst.name,
                "org_name": str(current_app.config["SITE_NAME"]),
                "intro": intro_paragraphs(lst.welcome_text),
                "manage_url": manage_url(subscriber.id, version=subscriber.token_version),
            },
        )
        domain = make_message_id(str(current_app.config["FROM_ADDRESS"])).partition("@")[2]
        queue_message(  # commits, which ends the row lock
            to=subscriber.email,
            name=subscriber.name,
            subject=subject,
            text=text,
            html=html,
            message_id=f"{tag}.{secrets.token_hex(8)}@{domain}",
        )


def _confirmation_tag(subscription: Subscription) -> str:
    assert subscription.confirmed_at is not None
    key = str(current_app.config["SECRET_KEY"]).encode()
    moment = subscription.confirmed_at.replace(microsecond=0).isoformat()
    what = f"welcome:{subscription.subscriber_id}:{subscription.list_id}:{moment}".encode()
    return "welcome-" + hmac.new(key, what, hashlib.sha256).hexdigest()[:16]


def _already_queued_or_sent(tag: str) -> bool:
    messages = TransactionalMessage.__table__
    found = db.session.scalar(
        select(messages.c.id)
        .where(
            messages.c.status != TransactionalStatus.FAILED,
            messages.c.message_id.startswith(f"{tag}.", autoescape=True),
        )
        .limit(1)
    )
    return found is not None
