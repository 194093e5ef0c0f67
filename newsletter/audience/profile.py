"""Changing one subscriber by hand (the admin pages and the API): name, attributes,
subscriptions, blocklisting, deletion; and the gate every new subscriber passes first.

Attributes whose keys start with ``_`` are the tool's own (``visible_attributes``): they are
never shown, never set from outside, and survive every edit.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import delete, select

from newsletter.audience import gate
from newsletter.audience.lists import get_list_by_slug
from newsletter.audience.models import (
    ConsentSource,
    MailingList,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from newsletter.audience.subscriptions import (
    clean_name,
    enqueue_confirmations,
    get_subscriber,
    publish_change,
    set_subscription,
    visible_attributes,
)
from newsletter.errors import NotFound, ValidationError
from newsletter.extensions import db
from newsletter.models import utcnow

#: the most attributes one subscriber may hold, and the size of their JSON
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTES_BYTES = 16 * 1024
MAX_KEY = 100


def check_gate(emails: Collection[str], *, via: str) -> None:
    """Refuse to create subscribers the gate refuses (an erased or blocklisted address).

    :raises ValidationError: ``field="email"``, saying why the first refused address is.
    """
    refused = gate.refused(emails, via=via)
    if refused:
        address, reason = next(iter(refused.items()))
        raise ValidationError(f"{address} cannot be added: {reason}", field="email")


def clean_attributes(attributes: Any) -> dict[str, Any]:
    """Attributes as a person or client may set them: a JSON object of at most 100 keys and
    16 KiB, no key empty, longer than 100 characters or starting with ``_``.

    :raises ValidationError: ``field="attributes"``, saying what is wrong.
    """
    if not isinstance(attributes, Mapping):
        raise ValidationError("attributes must be a JSON object", field="attributes")
    if len(attributes) > MAX_ATTRIBUTES:
        raise ValidationError(
            f"at most {MAX_ATTRIBUTES} attributes", field="attributes"
        )
    for key in attributes:
        if not isinstance(key, str) or not key.strip():
            raise ValidationError("attribute names cannot be empty", field="attributes")
        if key.startswith("_"):
            raise ValidationError(
                f"attribute names cannot start with _ ({key!r}): those are the tool's own",
                field="attributes",
            )
        if len(key) > MAX_KEY or "\x00" in key:
            raise ValidationError(f"the attribute name {key[:20]!r}… is too long",
                                  field="attributes")
    try:
        encoded = json.dumps(dict(attributes), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        raise ValidationError("attributes must hold JSON values only", field="attributes") from None
    if "\\u0000" in encoded:  # PostgreSQL's JSON refuses NUL in text
        raise ValidationError("attributes cannot contain NUL characters", field="attributes")
    if len(encoded.encode()) > MAX_ATTRIBUTES_BYTES:
        raise ValidationError(
            f"attributes are larger than {MAX_ATTRIBUTES_BYTES // 1024} KiB", field="attributes"
        )
    return dict(attributes)


def parse_attributes(text: str) -> dict[str, Any]:
    """Attributes typed as JSON in the admin's editor (blank: none).

    :raises ValidationError: not JSON, not an object, or see :func:`clean_attributes`.
    """
    if not (text or "").strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as error:
        raise ValidationError(f"not valid JSON: {error}", field="attributes") from None
    return clean_attributes(value)


def update_subscriber(
    subscriber_id: int,
    *,
    name: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    replace_attributes: bool = False,
    status: SubscriberStatus | None = None,
    subscriptions: list[tuple[str, SubscriptionStatus]] | None = None,
    source: ConsentSource = ConsentSource.ADMIN,
) -> Subscriber:
    """Change what is given, all or nothing, and commit.

    :param attributes: merged into the visible attributes (a ``None`` value removes that
        key), or with ``replace_attributes`` the whole visible set. The tool's own keys stay.
    :param subscriptions: ``(list slug, status)`` pairs; lists not named are left alone.
        See :func:`set_list_status`.
    :raises NotFound: no such subscriber, or no such list (``field="subscriptions"``).
    :raises ValidationError: a bad name or attributes.
    """
    subscriber = get_subscriber(subscriber_id)
    pending: list[tuple[int, int]] = []
    try:
        if name is not None:
            subscriber.name = clean_name(name)
        if attributes is not None:
            subscriber.attributes = _new_attributes(
                subscriber.attributes, attributes, replace=replace_attributes
            )
        if status is not None:
            subscriber.status = status
        for slug, wanted in subscriptions or []:
            lst = get_list_by_slug(slug)
            if set_list_status(subscriber, lst, wanted, source=source):
                pending.append((subscriber.id, lst.id))
        subscriber.updated_at = utcnow()
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if subscriber.status is SubscriberStatus.ACTIVE:
        enqueue_confirmations(pending)
    return subscriber


def _new_attributes(
    current: Mapping[str, Any] | None, given: Mapping[str, Any], *, replace: bool
) -> dict[str, Any]:
    own = {key: value for key, value in (current or {}).items() if key.startswith("_")}
    if replace:
        visible = clean_attributes({k: v for k, v in given.items() if v is not None})
    else:
        visible = visible_attributes(dict(current or {}))
        for key, value in clean_attributes(given).items():
            if value is None:
                visible.pop(key, None)
            else:
                visible[key] = value
        clean_attributes(visible)  # the merged whole stays within the caps
    # A new JSON value, not an edit in place: plain JSON columns track assignment only.
    return {**visible, **own}


def set_list_status(
    subscriber: Subscriber,
    lst: MailingList,
    status: SubscriptionStatus,
    *,
    source: ConsentSource = ConsentSource.ADMIN,
) -> bool:
    """Put the subscription on ``lst`` in ``status``, in the session (the caller commits).

    ``confirmed``: confirmed now (consent gathered elsewhere), the change is the consent on
    record; ``unconfirmed``: (re)started, awaiting the person's confirmation;
    ``unsubscribed``: off the list, the consent kept on record. Unchanged when already so.

    :returns: True when a confirmation mail should go out (after the commit).
    """
    current = next((s for s in subscriber.subscriptions if s.list_id == lst.id), None)
    if current is not None and current.status is status:
        return False
    if status is SubscriptionStatus.UNSUBSCRIBED:
        if current is not None:
            current.status = SubscriptionStatus.UNSUBSCRIBED
            current.unsubscribed_at = utcnow()
            publish_change(subscriber, lst, status)
        return False
    if current is not None and current.status is SubscriptionStatus.CONFIRMED:
        # set_subscription leaves confirmed ones alone; asked to, start again unconfirmed.
        current.status = SubscriptionStatus.UNSUBSCRIBED
    set_subscription(
        subscriber, lst, source=source, ip=None,
        confirmed=status is SubscriptionStatus.CONFIRMED,
    )
    publish_change(subscriber, lst, status)
    return status is SubscriptionStatus.UNCONFIRMED


def change_subscription(
    subscriber_id: int, list_id: int, status: SubscriptionStatus
) -> Subscriber:
    """Put one subscription in ``status`` from the admin (see :func:`set_list_status`).

    :raises NotFound: no such subscriber or list.
    """
    lst = db.session.get(MailingList, list_id)
    if lst is None:
        raise NotFound("list", list_id)
    subscriber = get_subscriber(subscriber_id)
    return update_subscriber(subscriber.id, subscriptions=[(lst.slug, status)])


def remove_subscription(subscriber_id: int, list_id: int) -> bool:
    """Take the subscriber off a list with no trace on it (not an unsubscription: the
    consent record goes too). False when there was none.

    :raises NotFound: no such subscriber.
    """
    get_subscriber(subscriber_id)
    result: Any = db.session.execute(
        delete(Subscription).where(
            Subscription.subscriber_id == subscriber_id, Subscription.list_id == list_id
        )
    )
    removed = result.rowcount
    db.session.commit()
    db.session.expire_all()
    return bool(removed)


def set_status(subscriber_id: int, status: SubscriberStatus) -> Subscriber:
    """Blocklist (never mailed again, whatever their subscriptions) or unblocklist.

    :raises NotFound: no such subscriber.
    """
    return update_subscriber(subscriber_id, status=status)


def delete_subscriber(subscriber_id: int) -> str:
    """Delete the subscriber, their subscriptions and their deliveries; returns the address.

    :raises NotFound: no such subscriber.
    """
    subscriber = get_subscriber(subscriber_id)
    email = subscriber.email
    db.session.delete(subscriber)
    db.session.commit()
    return email


def subscriber_lists(subscriber: Subscriber) -> list[MailingList]:
    """The lists the subscriber could be added to: those they have no subscription on."""
    on = {s.list_id for s in subscriber.subscriptions}
    lists = db.session.scalars(
        select(MailingList).where(MailingList.archived_at.is_(None)).order_by(MailingList.name)
    )
    return [lst for lst in lists if lst.id not in on]
