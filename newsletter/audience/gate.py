"""The gate every address passes on its way in: blocklisted addresses and domains, and
addresses erased at the person's request, are not added again.

One call answers for many addresses in three queries (blocklisted subscribers, blocked
domains, erased hashes), each skipped after a one-row probe finds its table empty, so the
importer can ask once per chunk of a few thousand rows.
Pass addresses as ``addresses.normalise_email`` returns them; they are compared lower-cased.

A person who was erased may sign up again through the public form (``via="form"``): that is
their own, new consent. Nothing else brings an erased address back.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from sqlalchemy import ColumnElement, Text, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY

from newsletter.audience.models import Subscriber, SubscriberStatus
from newsletter.audience.privacy_models import BlockedDomain, ErasedAddress, address_hasher
from newsletter.extensions import db

BLOCKLISTED_ADDRESS = "blocklisted address"
BLOCKLISTED_DOMAIN = "blocklisted domain"
ERASED = "erased at the person's request"
VIAS = frozenset({"import", "api", "admin", "form"})
#: bound parameters per query: well under SQLite's 32,766 and cheap for PostgreSQL
_CHUNK = 10_000
_TEXT_ARRAY = ARRAY(Text())


def refused(emails: Collection[str], *, via: str) -> dict[str, str]:
    """The addresses among ``emails`` that may not be added, lower-cased, with the reason.

    Reasons, the first that applies: :data:`BLOCKLISTED_ADDRESS` (also for an address erased
    while blocklisted), :data:`BLOCKLISTED_DOMAIN`, :data:`ERASED` (never for ``via="form"``).

    :param via: ``"import"``, ``"api"``, ``"admin"`` or ``"form"``.
    :raises ValueError: another ``via``.
    """
    if via not in VIAS:
        raise ValueError(f"unknown way in {via!r}; one of {sorted(VIAS)}")
    wanted = sorted({email.strip().lower() for email in emails if email and email.strip()})
    if not wanted:
        return {}
    reasons: dict[str, str] = {}
    # Each kind of refusal is looked for only where the table has any row: one probe,
    # where a look-up of 10,000 addresses (hashed first, for the erased) costs a second.
    hash_of = address_hasher()
    by_hash = {hash_of(address): address for address in wanted} if _any(ErasedAddress.id) else {}
    for chunk in _chunks(sorted(by_hash)):
        for found, blocklisted in db.session.execute(
            select(ErasedAddress.address_hash, ErasedAddress.blocklisted).where(
                _among(ErasedAddress.address_hash, chunk)
            )
        ):
            if blocklisted:  # erased while blocklisted: the block outlives the person
                reasons[by_hash[found]] = BLOCKLISTED_ADDRESS
            elif via != "form":
                reasons[by_hash[found]] = ERASED
    by_domain: dict[str, list[str]] = {}
    for address in wanted:
        by_domain.setdefault(address.rpartition("@")[2], []).append(address)
    for chunk in _chunks(sorted(by_domain) if _any(BlockedDomain.id) else []):
        for (domain,) in db.session.execute(
            select(BlockedDomain.domain).where(_among(BlockedDomain.domain, chunk))
        ):
            for address in by_domain.get(domain, ()):
                reasons[address] = BLOCKLISTED_DOMAIN
    lowered = func.lower(Subscriber.email)  # the expression of uq_subscribers_email_lower
    blocklisted = _any(Subscriber.id, Subscriber.status == SubscriberStatus.BLOCKLISTED)
    for chunk in _chunks(wanted if blocklisted else []):
        for (address,) in db.session.execute(
            select(lowered).where(
                _among(lowered, chunk), Subscriber.status == SubscriberStatus.BLOCKLISTED
            )
        ):
            reasons[address] = BLOCKLISTED_ADDRESS
    return reasons


def _any(column: Any, *where: Any) -> bool:
    """Whether any row has ``column`` (under ``where``): one index probe."""
    return db.session.scalar(select(column).where(*where).limit(1)) is not None


def _among(column: Any, values: list[str]) -> ColumnElement[bool]:
    """``column IN values``; on PostgreSQL as ``= ANY(array)``, one bound parameter: an IN
    of 10,000 placeholders cost more to build, send and parse than the look-up itself
    (measured: most of an import's time)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=_TEXT_ARRAY))
    return column.in_(values)


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]
