"""The double opt-in mail: one message with the confirmation link, sent from a worker."""

from __future__ import annotations

from email.utils import parseaddr

from flask import current_app

from newsletter.audience.addresses import ascii_address
from newsletter.audience.models import SubscriberStatus, Subscription, SubscriptionStatus
from newsletter.audience.tokens import confirm_url
from newsletter.extensions import db
from newsletter.mail.message import build_simple_message
from newsletter.mail.render import render_confirmation
from newsletter.mail.transport import open_transport


def confirmation_subject(list_name: str) -> str:
    """The subject line of the confirmation mail."""
    return f"Please confirm your subscription to {list_name}"


def send_confirmation(subscriber_id: int, list_id: int) -> None:
    """Mail the confirmation link for one subscription.

    Does nothing when the subscription is gone, already confirmed or unsubscribed, or the
    address is blocklisted, so a retried or duplicated job sends no surplus mail.

    :raises TemporaryDeliveryError: the relay said try later (the actor retries).
    :raises PermanentDeliveryError: the relay refused the address (never retried).
    """

    subscription = db.session.get(Subscription, (subscriber_id, list_id))
    if (
        subscription is None
        or subscription.status is not SubscriptionStatus.UNCONFIRMED
        or subscription.subscriber.status is not SubscriberStatus.ACTIVE
    ):
        return
    list_name = subscription.list.name
    text, html = render_confirmation(list_name, confirm_url(subscriber_id, list_id))
    config = current_app.config
    recipient = ascii_address(subscription.subscriber.email)
    message = build_simple_message(
        to=recipient,
        subject=confirmation_subject(list_name),
        text=text,
        html=html,
        from_address=config["FROM_ADDRESS"],
    )
    transport = open_transport(config)
    try:
        # The envelope sender is the bare address, not "Name <address>".
        transport.send(parseaddr(config["FROM_ADDRESS"])[1], recipient, message)
    finally:
        transport.close()
