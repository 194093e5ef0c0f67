"""The blocklist: domains and addresses that are never added (form, API, import, admin)
nor mailed.

Domains live in ``blocked_domains``; the match is exact (blocking ``example.com`` does not
block ``mail.example.com``). Addresses are blocklisted on their subscriber row, the same
status a hard bounce sets (``SubscriberStatus.BLOCKLISTED``): an address not known yet gets
a row of its own with that status and no subscription, so the send, the gate and the
subscriber pages all look in one place. Who blocked it, when and why is kept in the hidden
attribute ``_blocklist`` (``_`` keys are never shown as attributes nor exported).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from newsletter.audience.addresses import normalise_email
from newsletter.audience.models import Subscriber, SubscriberStatus
from newsletter.audience.privacy_models import BlockedDomain
from newsletter.audience.subscriptions import find_subscriber
from newsletter.errors import Conflict, InvalidEmail, NotFound, ValidationError
from newsletter.extensions import db
from newsletter.models import get_or_raise, utcnow

#: the hidden attribute holding who blocklisted an address, when and why
BLOCKLIST_KEY = "_blocklist"
REASON_MAX = 500


@dataclass(frozen=True)
class BlockedAddress:
    """A blocklisted address as the blocklist page lists it."""

    subscriber_id: int
    email: str
    reason: str
    by: str
    at: datetime | None
    #: True: the row exists only to block the address (removing the block deletes it)
    placeholder: bool


def normalise_domain(domain: str) -> str:
    """A domain as addresses store it: lower case, internationalised domains in Unicode.

    :raises ValidationError: ``field="domain"``, not a domain an address could have.
    """
    candidate = (domain or "").strip().lstrip("@").rstrip(".")
    if not candidate or "@" in candidate:
        raise ValidationError("enter a domain such as example.com", field="domain")
    try:
        return normalise_email(f"postmaster@{candidate}").rpartition("@")[2].lower()
    except InvalidEmail as error:
        raise ValidationError(
            f"{candidate!r} is not a domain: {error.reason}", field="domain"
        ) from None


def block_domain(domain: str, *, reason: str = "", by: str = "") -> BlockedDomain:
    """Blocklist a domain (committed).

    :raises ValidationError: not a domain.
    :raises Conflict: already blocklisted.
    """
    name = normalise_domain(domain)
    if db.session.scalar(select(BlockedDomain.id).where(BlockedDomain.domain == name)):
        raise Conflict(f"{name} is already blocklisted", field="domain")
    row = BlockedDomain(domain=name, reason=reason.strip()[:REASON_MAX], created_by=by)
    db.session.add(row)
    db.session.commit()
    return row


def unblock_domain(domain_id: int) -> BlockedDomain:
    """Take a domain off the blocklist (committed).

    :raises NotFound: no such entry.
    """
    row = get_or_raise(BlockedDomain, domain_id, "blocked domain")
    db.session.delete(row)
    db.session.commit()
    return row


def blocked_domains() -> list[BlockedDomain]:
    """Every blocklisted domain, alphabetically."""
    return list(db.session.scalars(select(BlockedDomain).order_by(BlockedDomain.domain)))


def block_address(email: str, *, reason: str = "", by: str = "") -> Subscriber:
    """Blocklist an address, known or not (committed): it is never mailed nor added again.

    :raises InvalidEmail: not an address.
    """
    address = normalise_email(email)
    subscriber = find_subscriber(address)
    record: dict[str, Any] = {
        "reason": reason.strip()[:REASON_MAX], "by": by, "at": utcnow().isoformat()
    }
    if subscriber is None:
        record["placeholder"] = True
        subscriber = Subscriber(email=address, name="", attributes={})
        db.session.add(subscriber)
    subscriber.status = SubscriberStatus.BLOCKLISTED
    subscriber.attributes = {**(subscriber.attributes or {}), BLOCKLIST_KEY: record}
    db.session.commit()
    return subscriber


def unblock_address(subscriber_id: int) -> str:
    """Take an address off the blocklist (committed); returns the address.

    A row made only to block the address, with no subscription since, is deleted; any other
    subscriber becomes active again (mailed again on the lists they are confirmed on).

    :raises NotFound: no such subscriber, or not blocklisted.
    """
    subscriber = get_or_raise(Subscriber, subscriber_id, "subscriber")
    if subscriber.status is not SubscriberStatus.BLOCKLISTED:
        raise NotFound("blocklisted address", subscriber_id)
    address = subscriber.email
    record = (subscriber.attributes or {}).get(BLOCKLIST_KEY) or {}
    if isinstance(record, dict) and record.get("placeholder") and not subscriber.subscriptions:
        db.session.delete(subscriber)
    else:
        subscriber.status = SubscriberStatus.ACTIVE
        subscriber.attributes = {
            key: value for key, value in (subscriber.attributes or {}).items()
            if key != BLOCKLIST_KEY
        }
    db.session.commit()
    return address


#: what the list says of an address blocklisted with no note (a hard bounce or complaint,
#: an import in blocklist mode, an API call): each of those leaves its own record elsewhere
NO_REASON = "no note: a bounce, an import or an API call"


def blocked_addresses(limit: int = 500) -> list[BlockedAddress]:
    """The blocklisted addresses (by hand or by a hard bounce), most recently changed first."""
    rows = db.session.scalars(
        select(Subscriber)
        .where(Subscriber.status == SubscriberStatus.BLOCKLISTED)
        .order_by(Subscriber.updated_at.desc(), Subscriber.id.desc())
        .limit(limit)
    )
    found = []
    for subscriber in rows:
        record = (subscriber.attributes or {}).get(BLOCKLIST_KEY)
        record = record if isinstance(record, dict) else {}
        at = record.get("at")
        found.append(
            BlockedAddress(
                subscriber_id=subscriber.id,
                email=subscriber.email,
                reason=str(record.get("reason") or ("" if record else NO_REASON)),
                by=str(record.get("by") or ""),
                at=datetime.fromisoformat(at) if isinstance(at, str) else subscriber.updated_at,
                placeholder=bool(record.get("placeholder")),
            )
        )
    return found
