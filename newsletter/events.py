"""The seam through which the domain says that something happened (a subscription, a
bounce, an issue sent), for the outgoing webhooks to tell the URLs an admin registered.

Callers use :func:`publish` inside their own transaction; what listens decides what to do.
"""

from __future__ import annotations

from typing import Any, Literal

EventKind = Literal[
    "subscriber.subscribed",
    "subscriber.confirmed",
    "subscriber.unsubscribed",
    "subscriber.bounced",
    "subscriber.complained",
    "issue.sent",
]


def publish(kind: EventKind, data: dict[str, Any]) -> None:
    """Tell the listeners that ``kind`` happened, with ``data`` (JSON-serialisable).

    Call it inside the transaction that made the change: a listener that stores work for
    later (the webhooks' outbox) commits or rolls back with it.
    """
    # The outgoing webhooks fill this in (issue 12, part 6).
    del kind, data
