"""The bounce policy: the one door every intake goes through.

Two entry points, stable for every intake (files, LMTP, the mailbox poller, the API, the
provider webhooks, our own synchronous 5xx replies)::

    take_message(raw: bytes, source: BounceSource, envelope_recipient: str | None = None)
        -> Outcome
    record(who: str | int | Subscriber, kind: BounceKind | str, reason: str,
           source: BounceSource, *, issue_id: int | None = None,
           delivery_id: int | None = None, now: datetime | None = None)
        -> BounceEvent | None

``take_message`` classifies a whole message sent to the bounce address, finds whom it is
about (the return-path token first, then the report's own recipients) and calls ``record``
for them. A message the classifier cannot read is kept in ``unread_bounces`` (capped at
``MAX_KEPT_BYTES``) for an editor, never dropped; one that reports nothing to act on
(delayed, an auto-reply) records nothing. Both commit.

``record`` is for intakes that already know the address and the kind (provider webhooks,
the JSON API, SMTP replies). ``who`` is an address, a subscriber id or a ``Subscriber``; an
address nobody has is ignored (None), so no caller can tell known from unknown.

What each kind does:

- **hard**: the address stops at once (blocklisted, as a hard 5xx always did);
- **soft**: Mailman's score: at most one point a UTC day, started again when the last counted
  bounce is older than the stale days (7), and at the threshold (5) the address stops;
- **complaint**: unsubscribed from every list at once.

Each is kept as a ``BounceEvent`` and published (``subscriber.bounced`` or
``subscriber.complained``) for the outgoing webhooks. :func:`reinstate` undoes a stop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from typing import Any

from flask import current_app
from sqlalchemy import select

from newsletter import events
from newsletter.audience.models import Subscriber, SubscriberStatus, SubscriptionStatus
from newsletter.audience.subscriptions import find_subscriber
from newsletter.delivery.bounces import returnpath, settings
from newsletter.delivery.bounces.classify import Classification, classify
from newsletter.delivery.bounces.models import BounceEvent, BounceKind, BounceSource, UnreadBounce
from newsletter.delivery.models import Delivery
from newsletter.errors import NotFound
from newsletter.extensions import db
from newsletter.models import get_or_raise, utcnow
from newsletter.ops import metrics

log = logging.getLogger(__name__)

#: the most of a message read at all (an intake should refuse more before reading it)
MAX_MESSAGE_BYTES = 2 * 1024 * 1024
#: the most of an unreadable message kept for an editor
MAX_KEPT_BYTES = 256 * 1024
#: the most of a message's start read for the headers an MTA adds on delivery
MAX_HEAD_BYTES = 64 * 1024
#: the most of a reply or a report's diagnostic kept on an event
MAX_REASON = 1000
#: the hidden attribute the blocklist keeps its record in (``audience/blocklist.py``)
BLOCKLIST_KEY = "_blocklist"
#: who blocklisted, in that record, when a bounce did
BY_BOUNCES = "bounce policy"


@dataclass(frozen=True)
class Outcome:
    """What ``take_message`` made of a message.

    ``kind`` is ``hard``, ``soft``, ``complaint`` or ``ignored`` (an unreadable message is
    ``ignored`` with ``kept`` set: it waits in ``unread_bounces``, id ``unread_id``).
    ``recipient`` is the address the report is about, when one was found (known to us or not).
    """

    kind: str
    recipient: str | None
    kept: bool = False
    unread_id: int | None = None
    reason: str = ""


def take_message(
    raw: bytes, source: BounceSource, envelope_recipient: str | None = None
) -> Outcome:
    """Classify a message sent to the bounce address and record what it reports (committed).

    :param raw: the message as received (read at most ``MAX_MESSAGE_BYTES`` of it).
    :param envelope_recipient: the address the MTA delivered it to (the ``LOCAL+TOKEN``
        return path), when the intake knows it.
    """
    raw = raw[:MAX_MESSAGE_BYTES]
    try:
        found = classify(raw, envelope_recipient=envelope_recipient)
    except Exception as error:  # noqa: BLE001 - whatever breaks the parser, the message is kept
        log.warning("bounce from %s not classified: %s", source.value, type(error).__name__)
        return _keep(raw, source, "", f"the classifier failed: {type(error).__name__}")
    if found.kind == "unreadable":
        return _keep(raw, source, found.subject, found.reason or "not a report we can read")
    named = _named(envelope_recipient, found, raw)
    if found.kind == "ignored":
        return Outcome("ignored", named.email or _first(found.recipients), reason=found.reason)
    kind = BounceKind(found.kind)
    if named.email is not None:
        record(named.subscriber_id or named.email, kind, found.reason, source,
               issue_id=named.issue_id, delivery_id=named.delivery_id)  # fmt: skip
        return Outcome(kind.value, named.email, reason=found.reason)
    if not found.recipients:
        # A bounce about nobody we can name: an editor may know better.
        return _keep(raw, source, found.subject, f"a {kind.value} report naming no recipient")
    for address in found.recipients:
        record(address, kind, found.reason, source)
    return Outcome(kind.value, found.recipients[0], reason=found.reason)


def record(
    who: str | int | Subscriber,
    kind: BounceKind | str,
    reason: str,
    source: BounceSource,
    *,
    issue_id: int | None = None,
    delivery_id: int | None = None,
    now: datetime | None = None,
) -> BounceEvent | None:
    """Keep a bounce or complaint for an address and apply the policy (committed).

    :param who: an address, a subscriber id, or a subscriber.
    :param kind: ``hard``, ``soft`` or ``complaint`` (or the ``BounceKind``).
    :param reason: the reply or the report's diagnostic (capped at ``MAX_REASON``).
    :param now: the time of the bounce (tests simulate days with it); default: now.
    :returns: the event, or None when no subscriber has the address (nothing is kept).
    :raises ValueError: ``kind`` is not one of the three.
    """
    kind = BounceKind(kind)
    when = now or utcnow()
    subscriber = _subscriber(who)
    if subscriber is None:
        return None
    event = BounceEvent(
        occurred_at=when,
        subscriber_id=subscriber.id,
        issue_id=issue_id,
        delivery_id=delivery_id,
        kind=kind,
        source=source,
        reason=_clean(reason),
        counted=True,
    )
    stopped = False
    if kind is BounceKind.HARD:
        stopped = _stop(subscriber, f"hard bounce: {event.reason}", when)
    elif kind is BounceKind.SOFT:
        event.counted, stopped = _score(subscriber, when)
    else:
        _unsubscribe_everywhere(subscriber, when)
    db.session.add(event)
    db.session.flush()
    data: dict[str, Any] = {
        "subscriber_id": subscriber.id,
        "email": subscriber.email,
        "kind": kind.value,
        "source": source.value,
        "issue_id": issue_id,
        "reason": event.reason,
        "occurred_at": when.isoformat(),
    }
    if kind is BounceKind.COMPLAINT:
        events.publish("subscriber.complained", data)
    else:
        events.publish("subscriber.bounced", {**data, "stopped": stopped})
    db.session.commit()
    metrics.count("newsletter_bounces", kind=kind.value, source=source.value)
    return event


def reinstate(subscriber_id: int, *, by: str = "") -> Subscriber:
    """Mail an address again: off the blocklist, soft-bounce score reset (committed).

    Subscriptions a complaint ended stay ended: only the person can subscribe again.

    :raises NotFound: no such subscriber.
    """
    subscriber = get_or_raise(Subscriber, subscriber_id, "subscriber")
    if subscriber.status is SubscriberStatus.BLOCKLISTED:
        subscriber.status = SubscriberStatus.ACTIVE
        subscriber.attributes = {
            key: value for key, value in (subscriber.attributes or {}).items()
            if key != BLOCKLIST_KEY
        }  # fmt: skip
    subscriber.bounce_score = 0
    subscriber.bounce_score_day = None
    subscriber.updated_at = utcnow()
    db.session.commit()
    log.info("subscriber %s reinstated by %s", subscriber_id, by or "someone")
    return subscriber


def is_stopped(subscriber: Subscriber) -> bool:
    """Whether mail to the subscriber is stopped (by a bounce, a complaint's own status, or
    by hand: all show as the blocklist)."""
    return subscriber.status is SubscriberStatus.BLOCKLISTED


def events_of(subscriber_id: int, limit: int = 200) -> list[BounceEvent]:
    """The subscriber's bounce and complaint events, newest first."""
    return list(
        db.session.scalars(
            select(BounceEvent)
            .where(BounceEvent.subscriber_id == subscriber_id)
            .order_by(BounceEvent.occurred_at.desc(), BounceEvent.id.desc())
            .limit(limit)
        )
    )


def recent_events(limit: int = 100) -> list[tuple[BounceEvent, str]]:
    """The latest events of everyone, with each subscriber's address, newest first."""
    rows = db.session.execute(
        select(BounceEvent, Subscriber.email)
        .join(Subscriber, Subscriber.id == BounceEvent.subscriber_id)
        .order_by(BounceEvent.occurred_at.desc(), BounceEvent.id.desc())
        .limit(limit)
    ).all()
    return [(event, email) for event, email in rows]


# --- the unread messages ----------------------------------------------------------------


def unread(limit: int = 100) -> list[UnreadBounce]:
    """Messages nobody has dealt with yet, oldest first."""
    return list(
        db.session.scalars(
            select(UnreadBounce)
            .where(UnreadBounce.resolved_at.is_(None))
            .order_by(UnreadBounce.received_at, UnreadBounce.id)
            .limit(limit)
        )
    )


def get_unread(unread_id: int) -> UnreadBounce:
    """One kept message.

    :raises NotFound: no such message.
    """
    return get_or_raise(UnreadBounce, unread_id, "unread bounce")


def resolve_unread(
    unread_id: int, *, kind: BounceKind | str | None, email: str = "", reason: str = ""
) -> BounceEvent | None:
    """An editor read a kept message: record it as ``kind`` for ``email`` (source admin),
    or with ``kind`` None dismiss it. Either way it leaves the list (committed).

    :raises NotFound: no such message, or it was dealt with already.
    """
    message = get_unread(unread_id)
    if message.resolved_at is not None:
        raise NotFound("unread bounce", unread_id)
    message.resolved_at = utcnow()
    if kind is None:
        db.session.commit()
        return None
    return record(email, kind, reason or f"classified by hand: {message.problem}",
                  BounceSource.ADMIN)  # fmt: skip


# --- the parts ----------------------------------------------------------------------------


def _keep(raw: bytes, source: BounceSource, subject: str, problem: str) -> Outcome:
    message = UnreadBounce(
        source=source,
        subject=_clean(subject)[:998],
        problem=_clean(problem),
        raw=raw[:MAX_KEPT_BYTES],
    )
    db.session.add(message)
    db.session.commit()
    return Outcome("ignored", None, kept=True, unread_id=message.id, reason=message.problem)


@dataclass(frozen=True)
class _Named:
    """Whom a return-path token names: a delivery's subscriber (and its issue), or a
    transactional message's recipient; all None when no valid token was found."""

    email: str | None = None
    subscriber_id: int | None = None
    issue_id: int | None = None
    delivery_id: int | None = None


def _named(envelope_recipient: str | None, found: Classification, raw: bytes) -> _Named:
    """Who the return-path token names: each candidate token the classifier found (most
    trusted first), then the envelope recipient's, then (a message read from a mailbox or a
    file, whose envelope is gone) those of the headers an MTA writes on delivery
    (``X-Original-To``, ``Delivered-To``) or ``To``. Only a token whose signature holds counts."""
    secret = str(current_app.config["SECRET_KEY"])
    tokens = list(found.tokens) or ([found.token] if found.token else [])
    addresses = [envelope_recipient] if envelope_recipient else _delivered_to(raw)
    for token, address in [*((t, None) for t in tokens), *((None, a) for a in addresses)]:
        delivery_id = returnpath.delivery_of(address, token, secret)
        if delivery_id is not None:
            delivery = db.session.get(Delivery, delivery_id)
            if delivery is not None and delivery.subscriber_id is not None:
                email = _email_of(delivery.subscriber_id)
                return _Named(email, delivery.subscriber_id, delivery.issue_id, delivery.id)
        tx_id = returnpath.delivery_of(address, token, secret, kind=returnpath.KIND_TRANSACTIONAL)
        if tx_id is not None:
            # By table, not model: the transactional module imports the send's outcomes,
            # which import this policy.
            table = db.metadata.tables["transactional_messages"]
            found_to = db.session.scalar(select(table.c.to_address).where(table.c.id == tx_id))
            if found_to:
                return _Named(str(found_to).lower())
    return _Named()


def _delivered_to(raw: bytes) -> list[str]:
    head = BytesHeaderParser(policy=compat32).parsebytes(raw[:MAX_HEAD_BYTES], headersonly=True)
    found = []
    for name in ("X-Original-To", "Delivered-To", "To"):
        for value in head.get_all(name) or []:
            for _, address in getaddresses([str(value)]):
                if "+" in address:
                    found.append(address)
    return found


def _subscriber(who: str | int | Subscriber) -> Subscriber | None:
    if isinstance(who, Subscriber):
        subscriber: Subscriber | None = who
    elif isinstance(who, int):
        subscriber = db.session.get(Subscriber, who)
    else:
        subscriber = find_subscriber(who.strip()) if who and who.strip() else None
    if subscriber is None:
        return None
    if db.session.get_bind().dialect.name == "postgresql":
        # Two reports of one address at once must not both read the old score.
        db.session.refresh(subscriber, with_for_update=True)
    return subscriber


def _email_of(subscriber_id: int) -> str | None:
    return db.session.scalar(select(Subscriber.email).where(Subscriber.id == subscriber_id))


def _first(addresses: tuple[str, ...]) -> str | None:
    return addresses[0] if addresses else None


def _clean(text: str) -> str:
    return " ".join((text or "").split())[:MAX_REASON]


def _stop(subscriber: Subscriber, why: str, when: datetime) -> bool:
    """Blocklist the subscriber (the send and the snapshot skip them); False when they were
    already stopped."""
    if subscriber.status is SubscriberStatus.BLOCKLISTED:
        return False
    subscriber.status = SubscriberStatus.BLOCKLISTED
    subscriber.attributes = {
        **(subscriber.attributes or {}),
        BLOCKLIST_KEY: {"reason": why[:500], "by": BY_BOUNCES, "at": when.isoformat()},
    }
    subscriber.updated_at = when
    return True


def _score(subscriber: Subscriber, when: datetime) -> tuple[bool, bool]:
    """Count a soft bounce as Mailman does; (counted, stopped now)."""
    policy = settings.current()
    today = when.astimezone(UTC).date()
    last = subscriber.bounce_score_day
    if last is not None and last == today:
        return False, False  # at most one point a day
    if last is None or last < today - timedelta(days=policy.stale_days):
        subscriber.bounce_score = 1  # the last counted bounce is stale: start again
    else:
        subscriber.bounce_score = (subscriber.bounce_score or 0) + 1
    subscriber.bounce_score_day = today
    stopped = False
    if subscriber.bounce_score >= policy.score_threshold:
        stopped = _stop(subscriber, f"soft bounces: score {subscriber.bounce_score}", when)
    return True, stopped


def _unsubscribe_everywhere(subscriber: Subscriber, when: datetime) -> None:
    for subscription in subscriber.subscriptions:
        if subscription.status is not SubscriptionStatus.UNSUBSCRIBED:
            subscription.status = SubscriptionStatus.UNSUBSCRIBED
            subscription.unsubscribed_at = when
