"""The seam through which the domain says that something happened (a subscription, a
bounce, an issue sent), for the outgoing webhooks to tell the URLs an admin registered.

Callers use :func:`publish` inside their own transaction; what listens decides what to do.
The webhooks' outbox (``delivery/webhooks/outbox.py``) writes one message per endpoint
that wants the event, in that transaction, and queues their delivery after the commit: a
change rolled back sends nothing. With no endpoint registered, a call costs one small
query. Keep ``data`` to what a receiver needs (ids, the address, a list's slug): every
endpoint that asked for the kind receives it.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from newsletter.delivery.webhooks import outbox

EventKind = Literal[
    "subscriber.subscribed",
    "subscriber.confirmed",
    "subscriber.unsubscribed",
    "subscriber.bounced",
    "subscriber.complained",
    "issue.sent",
]

#: every kind, in the order the admin page offers them
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)

#: what each kind means, for the admin page and the API's documentation
DESCRIPTIONS: dict[str, str] = {
    "subscriber.subscribed": "someone subscribed to a list (confirmed or awaiting confirmation)",
    "subscriber.confirmed": "a subscription was confirmed",
    "subscriber.unsubscribed": "someone left a list",
    "subscriber.bounced": "mail to an address bounced",
    "subscriber.complained": "a reader marked mail as spam",
    "issue.sent": "an issue finished sending",
}


def publish(kind: EventKind, data: dict[str, Any]) -> None:
    """Tell the listeners that ``kind`` happened, with ``data`` (JSON-serialisable).

    Call it inside the transaction that made the change: a listener that stores work for
    later (the webhooks' outbox) commits or rolls back with it.
    """
    outbox.publish(kind, data)


def subscription_data(subscriber_id: int, email: str, list_slug: str) -> dict[str, Any]:
    """The ``data`` of a ``subscriber.*`` event about one list: nothing more than this."""
    return {"subscriber_id": subscriber_id, "email": email, "list": list_slug}
