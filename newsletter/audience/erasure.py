"""Erasure at the person's request: the person goes, a keyed hash of the address stays.

What goes: the subscriber row (name, attributes), their subscriptions (consent records
included), the transactional mail addressed to them (confirmation mails hold the address
and links), and every trace of them in the delivery ledger: the rows stay, so each issue's
counts stay right, but without the subscriber (``subscriber_id`` NULL) and with the address
taken out of the relay's replies; and the copies of their mail in a Maildir outbox. Pending
rows of a send in progress become ``skipped``, so no worker mails them; a worker that
already holds one in memory may still send that one message (its outcome lands on the
anonymous row).

What stays: :class:`~newsletter.audience.privacy_models.ErasedAddress`, the HMAC of the
address, so the gate (``newsletter.audience.gate``) refuses to import it or add it through
the API again. Only the person's own sign-up through the public form is let in, unless the
address was blocklisted when erased: then the hash keeps it out everywhere (erasing oneself
is no way around a block).
"""

from __future__ import annotations

import re

from flask import current_app
from sqlalchemy import delete, func, select, update

from newsletter import audit
from newsletter.audience.models import Subscriber, SubscriberStatus
from newsletter.audience.privacy_models import ErasedAddress, address_hash
from newsletter.delivery.models import Delivery, DeliveryStatus
from newsletter.delivery.transactional import TransactionalMessage
from newsletter.extensions import db
from newsletter.mail.transport import configured_relays, forget_maildir_copies

ERASED_MARK = "[erased]"
#: who the audit log says erased someone from the preferences page
READER_ACTOR = "subscriber"


def erase(subscriber: Subscriber, *, actor: str = READER_ACTOR) -> None:
    """Delete the person and keep only the keyed hash of their address (committed).

    :param actor: who asked, for the audit log (which keeps the subscriber's id, never the
        address): the person themselves by default, or an admin's address.
    """
    subscriber_id, address = subscriber.id, subscriber.email.strip().lower()
    blocklisted = subscriber.status is SubscriberStatus.BLOCKLISTED
    deliveries = Delivery.__table__
    mine = deliveries.c.subscriber_id == subscriber_id
    db.session.execute(
        update(deliveries)
        .where(mine, deliveries.c.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.SKIPPED, lease_until=None)
    )
    quoted = re.compile(re.escape(address), re.IGNORECASE)
    replies = db.session.execute(
        select(deliveries.c.id, deliveries.c.last_reply).where(
            mine, deliveries.c.last_reply.is_not(None)
        )
    ).all()
    for delivery_id, reply in replies:
        if quoted.search(reply):
            db.session.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(last_reply=quoted.sub(ERASED_MARK, reply))
            )
    db.session.execute(update(deliveries).where(mine).values(subscriber_id=None))
    db.session.execute(
        delete(TransactionalMessage).where(func.lower(TransactionalMessage.to_address) == address)
    )
    db.session.delete(subscriber)  # its subscriptions go with it (ORM and ON DELETE CASCADE)
    kept = db.session.scalar(
        select(ErasedAddress).where(ErasedAddress.address_hash == address_hash(address))
    )
    if kept is None:
        db.session.add(ErasedAddress(address_hash=address_hash(address), blocklisted=blocklisted))
    else:
        kept.blocklisted = kept.blocklisted or blocklisted
    db.session.commit()
    _forget_outbox_copies(address)
    audit.record("subscriber.erase", actor=actor, target=f"subscriber_id={subscriber_id}")


def _forget_outbox_copies(address: str) -> None:
    """The Maildir outbox (the embedded default, or a ``maildir://`` relay) holds a copy of
    each message; the ones to the erased person go too."""
    for relay in configured_relays(current_app.config):
        if relay.scheme == "maildir":
            forget_maildir_copies(relay.path, address)


def is_erased(address: str) -> bool:
    """Whether ``address`` was erased at the person's request (and not signed up since)."""
    hashed = address_hash(address)
    return db.session.scalar(
        select(ErasedAddress.id).where(ErasedAddress.address_hash == hashed)
    ) is not None
