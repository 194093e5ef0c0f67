"""Subscribing, confirming, unsubscribing and preferences, with the consent kept on record.

Every subscription keeps how it was asked for (``consent_source``, ``consent_detail``), on
which page (``consent_page``), from where (``consent_ip``, ``consent_user_agent``: as the
``CONSENT_IP`` setting allows) and when (``created_at``, then ``confirmed_at`` /
``unsubscribed_at``); see ``newsletter.audience.consent``. Every address passes the gate
(``newsletter.audience.gate``) first.
Confirmation mail is queued only after the commit, so a worker never looks for a row that
is not there yet. Each change of a subscription is published (``newsletter.events``) in the
transaction that makes it, for the outgoing webhooks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from newsletter import events, queue
from newsletter.audience.addresses import normalise_email
from newsletter.audience.consent import Consent
from newsletter.audience.gate import refused
from newsletter.audience.lists import get_list_by_slug, list_lists
from newsletter.audience.models import (
    ConsentSource,
    MailingList,
    OptIn,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from newsletter.audience.privacy_models import ErasedAddress, address_hash
from newsletter.audience.tokens import read_token
from newsletter.errors import AddressRefused, InvalidToken, ValidationError
from newsletter.extensions import db
from newsletter.models import get_or_raise, utcnow
from newsletter.ops import metrics

MAX_AGE_SETTING = {
    "confirm": "CONFIRM_MAX_AGE",
    "unsubscribe": "UNSUBSCRIBE_MAX_AGE",
    "manage": "MANAGE_MAX_AGE",
}
NAME_MAX = 200
#: where a name typed on the public form waits for the confirmation mail to be answered
#: (in ``attributes``: no column of its own, and never applied without that answer)
PENDING_NAME = "_pending_name"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")

Pending = list[tuple[int, int]]  # (subscriber_id, list_id) awaiting a confirmation mail


def visible_attributes(attributes: dict[str, Any] | None) -> dict[str, Any]:
    """A subscriber's attributes as shown to editors and API clients: without the tool's own
    keys (those starting with ``_``, such as a name still waiting for its confirmation)."""
    return {key: value for key, value in (attributes or {}).items() if not key.startswith("_")}


def clean_name(name: str | None) -> str:
    """A display name fit for storage and mail headers: one line, trimmed, at most 200 chars.

    :raises ValidationError: ``field="name"`` when too long.
    """
    cleaned = " ".join(_CONTROL.sub(" ", name or "").split())
    if len(cleaned) > NAME_MAX:
        raise ValidationError(f"the name is longer than {NAME_MAX} characters", field="name")
    return cleaned


def find_subscriber(email: str) -> Subscriber | None:
    """The subscriber with this address, whatever its case, or None."""
    # lower() on both sides: the same function as the unique index uq_subscribers_email_lower.
    return db.session.scalar(
        select(Subscriber).where(func.lower(Subscriber.email) == func.lower(email))
    )


def get_subscriber(subscriber_id: int) -> Subscriber:
    """The subscriber with this id.

    :raises NotFound: no such subscriber.
    """
    return get_or_raise(Subscriber, subscriber_id, "subscriber")


def subscribe(
    email: str,
    *,
    name: str = "",
    list_slugs: list[str],
    source: ConsentSource,
    ip: str | None = None,
    confirmed: bool = False,
    consent: Consent | None = None,
    language: str | None = None,
) -> Subscriber:
    """Subscribe an address to lists, creating the subscriber if new.

    Per list: ``confirmed``, or a single opt-in list the address never left → confirmed at
    once; otherwise unconfirmed and a confirmation mail is queued, so that only the person's
    own confirmation brings back an address that unsubscribed. Confirmed subscriptions are
    left alone; unconfirmed and unsubscribed ones start again with this request as their
    consent.

    A name from the public form (``source=FORM``) is anyone's say: it is taken at once only
    for a new address confirmed at once; otherwise it waits beside the confirmation mail and
    is kept when the person confirms (see :func:`confirm`).

    ``consent`` says more about this consent (detail, page, user agent: see
    ``newsletter.audience.consent``); without it only ``source`` and ``ip`` are recorded.

    ``language`` (the page's, for a form) becomes the subscriber's language when none is
    on record yet: their confirmation and welcome mail are written in it.

    :raises InvalidEmail: the address is not valid.
    :raises AddressRefused: the gate refuses the address (blocklisted, or erased unless this
        is the person's own sign-up through the form); nothing is stored.
    :raises ValidationError: no list (``field="lists"``) or a bad name.
    :raises NotFound: a list slug that does not exist.
    """
    address = normalise_email(
        email, check_deliverability=bool(current_app.config.get("CHECK_DELIVERABILITY"))
    )
    reason = refused([address], via=source.value).get(address.lower())
    if reason is not None:
        raise AddressRefused(address, reason)
    name = clean_name(name)
    lists = _resolve_lists(list_slugs)
    consent = consent or Consent(source, ip=ip)
    try:
        subscriber, pending = _subscribe(address, name, lists, consent, confirmed)
        _set_language(subscriber, language)
        db.session.commit()
    except IntegrityError:
        # Another request created the same address between our look-up and our insert.
        db.session.rollback()
        subscriber, pending = _subscribe(address, name, lists, consent, confirmed)
        _set_language(subscriber, language)
        db.session.commit()
    enqueue_confirmations(pending)
    metrics.count("newsletter_signups", via=source.value)
    return subscriber


def _set_language(subscriber: Subscriber, language: str | None) -> None:
    # Only when none is stored: anyone may post the form for an address, and must not
    # change the language its owner reads us in.
    if language and not subscriber.language:
        subscriber.language = language[:16]


def _resolve_lists(list_slugs: Iterable[str]) -> list[MailingList]:
    slugs = list(dict.fromkeys(slug.strip() for slug in list_slugs if slug and slug.strip()))
    if not slugs:
        raise ValidationError("choose at least one list", field="lists")
    return [get_list_by_slug(slug) for slug in slugs]


def _subscribe(
    address: str,
    name: str,
    lists: list[MailingList],
    consent: Consent,
    confirmed: bool,
) -> tuple[Subscriber, Pending]:
    source = consent.source
    subscriber = find_subscriber(address)
    is_new = subscriber is None
    if subscriber is None:
        subscriber = Subscriber(email=address, name="", attributes={})
        db.session.add(subscriber)
    db.session.flush()
    pending: Pending = []
    confirmed_now = False
    for lst in lists:
        current = _subscription_on(subscriber, lst)
        returning = current is not None and current.status is SubscriptionStatus.UNSUBSCRIBED
        at_once = confirmed or (lst.optin is OptIn.SINGLE and not returning)
        subscription = set_subscription(
            subscriber, lst, source=source, ip=None, confirmed=at_once, consent=consent
        )
        if subscription is not None:
            publish_change(subscriber, lst, subscription.status)
        confirmed_now = confirmed_now or at_once
        if (
            subscription is not None
            and subscription.status is SubscriptionStatus.UNCONFIRMED
            and subscriber.status is SubscriberStatus.ACTIVE
        ):
            pending.append((subscriber.id, lst.id))
    if pending and not _claim_confirmation_mail(subscriber):
        pending = []  # one was mailed moments ago; its link still works
    if confirmed_now and source is ConsentSource.FORM:
        lift_suppression(address)  # their own sign-up, confirmed: a new consent
    if name:
        if source is not ConsentSource.FORM or (is_new and confirmed_now):
            _set_name(subscriber, name)
        elif pending:
            _set_pending_name(subscriber, name)
    return subscriber, pending


def _claim_confirmation_mail(subscriber: Subscriber) -> bool:
    """Whether this request may mail the address a confirmation link now, marking it sent.

    At most one request per ``CONFIRMATION_COOLDOWN`` seconds does, so that nobody can flood
    an address with confirmation mail through the public form. One conditional UPDATE, so
    two requests at once cannot both pass (the second waits for the first's row lock).
    """
    now = utcnow()
    cooldown = timedelta(seconds=int(current_app.config["CONFIRMATION_COOLDOWN"]))
    # And at most CONFIRMATIONS_PER_DAY a UTC day: the cool-down alone still lets a script
    # mail an address 144 times a day.
    today, cap = now.date(), int(current_app.config["CONFIRMATIONS_PER_DAY"])
    same_day = Subscriber.confirmations_day == today
    claimed = db.session.execute(
        update(Subscriber)
        .where(
            Subscriber.id == subscriber.id,
            or_(
                Subscriber.confirmation_sent_at.is_(None),
                Subscriber.confirmation_sent_at <= now - cooldown,
            ),
            or_(
                Subscriber.confirmations_day.is_(None),
                Subscriber.confirmations_day != today,
                Subscriber.confirmations_that_day < cap,
            ),
        )
        .values(
            confirmation_sent_at=now,
            confirmations_day=today,
            confirmations_that_day=case(
                (same_day, Subscriber.confirmations_that_day + 1), else_=1
            ),
        )
        .returning(Subscriber.id)
        .execution_options(synchronize_session=False)
    ).first()
    db.session.refresh(
        subscriber, ["confirmation_sent_at", "confirmations_day", "confirmations_that_day"]
    )
    return claimed is not None


def _subscription_on(subscriber: Subscriber, lst: MailingList) -> Subscription | None:
    return next((s for s in subscriber.subscriptions if s.list_id == lst.id), None)


def _set_name(subscriber: Subscriber, name: str) -> None:
    subscriber.name = name
    if PENDING_NAME in (subscriber.attributes or {}):
        # A new JSON value, not an edit in place: plain JSON columns track assignment only.
        subscriber.attributes = {
            key: value for key, value in subscriber.attributes.items() if key != PENDING_NAME
        }


def _set_pending_name(subscriber: Subscriber, name: str) -> None:
    subscriber.attributes = {**(subscriber.attributes or {}), PENDING_NAME: name}


def set_subscription(
    subscriber: Subscriber,
    lst: MailingList,
    *,
    source: ConsentSource,
    ip: str | None,
    confirmed: bool,
    consent: Consent | None = None,
) -> Subscription | None:
    """Start (or restart) one subscription in the session; None if it was already confirmed.

    ``consent`` (else ``source`` and ``ip``) becomes the consent on record, with the
    ``CONSENT_IP`` setting applied. Not committed: the caller commits (and queues
    confirmation mail after).
    """
    now = utcnow()
    subscription = _subscription_on(subscriber, lst)
    if subscription is not None and subscription.status is SubscriptionStatus.CONFIRMED:
        return None
    if subscription is None:
        subscription = Subscription(list=lst, consent_source=source)
        subscriber.subscriptions.append(subscription)
    # This request is now the consent on record.
    for column, value in (consent or Consent(source, ip=ip)).columns().items():
        setattr(subscription, column, value)
    subscription.created_at = now
    subscription.unsubscribed_at = None
    subscription.confirmed_at = now if confirmed else None
    subscription.status = (
        SubscriptionStatus.CONFIRMED if confirmed else SubscriptionStatus.UNCONFIRMED
    )
    return subscription


def publish_change(
    subscriber: Subscriber, lst: MailingList, status: SubscriptionStatus
) -> None:
    """Publish what a subscription on ``lst`` just became (in the caller's transaction):
    ``subscriber.subscribed`` for a new or restarted one (and ``subscriber.confirmed`` too
    when confirmed at once), ``subscriber.unsubscribed`` for one left."""
    if subscriber.id is None:
        db.session.flush()  # a new subscriber: the event names its id
    data = events.subscription_data(subscriber.id, subscriber.email, lst.slug)
    if status is SubscriptionStatus.UNSUBSCRIBED:
        events.publish("subscriber.unsubscribed", data)
        return
    events.publish("subscriber.subscribed", data)
    if status is SubscriptionStatus.CONFIRMED:
        events.publish("subscriber.confirmed", data)


def enqueue_confirmations(pending: Pending) -> None:
    """Queue one confirmation mail per (subscriber_id, list_id); call after the commit."""

    for subscriber_id, list_id in pending:
        queue.enqueue("send_confirmation", subscriber_id, list_id)


@dataclass(frozen=True)
class Link:
    """What a mailed link stands for, checked."""

    subscriber: Subscriber
    list: MailingList | None
    issued_at: datetime
    #: the issue the link was mailed with (None: other mail, or a link from before)
    issue_id: int | None = None

    def younger_than(self, seconds: int) -> bool:
        """Whether the link was signed less than ``seconds`` ago."""
        return utcnow() - self.issued_at < timedelta(seconds=seconds)


def read_link(purpose: str, token: str) -> Link:
    """The subscriber (and list) a mailed link stands for, checked but not acted on.

    :raises InvalidToken: forged, expired, revoked (``revoke_links``), or for a subscriber
        or list that is gone.
    """
    data = read_token(purpose, token, int(current_app.config[MAX_AGE_SETTING[purpose]]))
    subscriber = db.session.get(Subscriber, data.subscriber_id)
    lst = db.session.get(MailingList, data.list_id) if data.list_id is not None else None
    if subscriber is None or (data.list_id is not None and lst is None):
        raise InvalidToken(purpose, "no longer valid")
    if purpose != "confirm" and data.version != subscriber.token_version:
        raise InvalidToken(purpose, "no longer valid")
    assert data.issued_at is not None  # read_token always sets it
    return Link(subscriber, lst, data.issued_at, data.issue_id)


def revoke_links(subscriber_id: int) -> None:
    """Make every manage and unsubscribe link mailed to the subscriber so far worthless.

    For an admin who learns that someone else holds a reader's links (a forwarded mail, a
    shared inbox): the next mail carries new ones.

    :raises NotFound: no such subscriber.
    """
    get_subscriber(subscriber_id)
    # In SQL, so two revocations at once bump twice rather than once.
    db.session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .values(token_version=Subscriber.token_version + 1)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def subscription_to_confirm(token: str) -> Subscription:
    """The subscription a confirmation link is for, without confirming it.

    :raises InvalidToken: forged, expired, not for a subscription we hold, or cancelled since.
    """
    link = read_link("confirm", token)
    subscriber, lst = link.subscriber, link.list
    subscription = (
        db.session.get(Subscription, (subscriber.id, lst.id)) if lst is not None else None
    )
    if subscription is None or subscription.status is SubscriptionStatus.UNSUBSCRIBED:
        raise InvalidToken("confirm", "no longer valid")
    return subscription


def confirm(token: str) -> Subscription:
    """Confirm the subscription a double opt-in link stands for (idempotent).

    A name typed on the form that asked for this mail becomes the subscriber's name now.

    :raises InvalidToken: see :func:`subscription_to_confirm`.
    """
    subscription = subscription_to_confirm(token)
    if subscription.status is SubscriptionStatus.UNCONFIRMED:
        subscription.status = SubscriptionStatus.CONFIRMED
        subscription.confirmed_at = utcnow()
        subscriber = subscription.subscriber
        pending_name = (subscriber.attributes or {}).get(PENDING_NAME)
        if isinstance(pending_name, str) and pending_name:
            _set_name(subscriber, clean_name(pending_name))
        lift_suppression(subscriber.email)  # the person's own confirmation: a new consent
        events.publish(
            "subscriber.confirmed",
            events.subscription_data(subscriber.id, subscriber.email, subscription.list.slug),
        )
        db.session.commit()
        metrics.count("newsletter_confirmations")
        if subscription.list.welcome_enabled:  # after the commit: the worker reads the row
            queue.enqueue("send_welcome", subscription.subscriber_id, subscription.list_id)
    return subscription


def lift_suppression(address: str) -> None:
    """Forget that ``address`` was erased (in the session, not committed): the person
    signed up again themselves and confirmed, so imports and the API may know it again."""
    db.session.execute(
        delete(ErasedAddress).where(
            ErasedAddress.address_hash == address_hash(address),
            ErasedAddress.blocklisted.is_(False),
        )
    )


def unsubscribe(subscriber_id: int, list_id: int | None) -> list[Subscription]:
    """Unsubscribe from one list, or from every list when ``list_id`` is None.

    Returns the subscriptions that changed (none when already unsubscribed).

    :raises NotFound: no such subscriber.
    """
    subscriber = get_subscriber(subscriber_id)
    now = utcnow()
    changed = []
    for subscription in subscriber.subscriptions:
        if list_id is not None and subscription.list_id != list_id:
            continue
        if subscription.status is not SubscriptionStatus.UNSUBSCRIBED:
            subscription.status = SubscriptionStatus.UNSUBSCRIBED
            subscription.unsubscribed_at = now
            changed.append(subscription)
            publish_change(subscriber, subscription.list, SubscriptionStatus.UNSUBSCRIBED)
    db.session.commit()
    return changed


def manageable_lists(subscriber: Subscriber) -> list[MailingList]:
    """The lists a subscriber may tick on their preferences page: the public lists and any
    list they are on."""
    on = {
        s.list_id: s.list
        for s in subscriber.subscriptions
        if s.status is not SubscriptionStatus.UNSUBSCRIBED
    }
    lists = {lst.id: lst for lst in list_lists(public_only=True)}
    lists.update(on)
    return sorted(lists.values(), key=lambda lst: (lst.name.lower(), lst.id))


def update_preferences(
    subscriber_id: int,
    *,
    name: str,
    list_slugs: list[str],
    ip: str | None = None,
    consent: Consent | None = None,
) -> Subscriber:
    """Set the name and exactly the ticked lists, from the subscriber's own preferences page.

    Lists ticked are confirmed at once: the link came through the subscriber's inbox.

    :raises NotFound: no such subscriber.
    :raises ValidationError: a list they may not choose (``field="lists"``) or a bad name.
    """
    subscriber = get_subscriber(subscriber_id)
    _set_name(subscriber, clean_name(name))  # their own choice: a name waiting from a form goes
    allowed = {lst.slug: lst for lst in manageable_lists(subscriber)}
    wanted = set(list_slugs)
    unknown = sorted(wanted - allowed.keys())
    if unknown:
        db.session.rollback()
        raise ValidationError(f"no list {unknown[0]!r} to choose", field="lists")
    now = utcnow()
    for slug, lst in allowed.items():
        current = next((s for s in subscriber.subscriptions if s.list_id == lst.id), None)
        if slug in wanted:
            started = set_subscription(
                subscriber, lst, source=ConsentSource.FORM, ip=ip, confirmed=True,
                consent=consent,
            )
            if started is not None:
                publish_change(subscriber, lst, SubscriptionStatus.CONFIRMED)
        elif current is not None and current.status is not SubscriptionStatus.UNSUBSCRIBED:
            current.status = SubscriptionStatus.UNSUBSCRIBED
            current.unsubscribed_at = now
            publish_change(subscriber, lst, SubscriptionStatus.UNSUBSCRIBED)
    db.session.commit()
    return subscriber
