"""The blocklist of domains and the suppression list of erased addresses.

Addresses are blocklisted on their subscriber row (``SubscriberStatus.BLOCKLISTED``): an
address blocked before it was ever seen gets a row with that status and no subscription
(see ``newsletter.audience.blocklist``), so the send, the gate and the subscriber pages have
one place to look.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime

from flask import current_app
from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.extensions import db
from newsletter.models import UTCDateTime, utcnow


class BlockedDomain(db.Model):  # type: ignore[name-defined]
    """A domain no address of which is added (form, API, import, admin) or mailed."""

    __tablename__ = "blocked_domains"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: lower case, internationalised domains in Unicode (as ``normalise_email`` keeps them)
    domain: Mapped[str] = mapped_column(String(255), unique=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: the admin's address, or ``cli``
    created_by: Mapped[str] = mapped_column(String(320), default="")

    def __repr__(self) -> str:
        return f"<BlockedDomain {self.domain}>"


class ErasedAddress(db.Model):  # type: ignore[name-defined]
    """An address erased at the person's request, kept only as a keyed hash.

    HMAC-SHA256 of the lower-cased address under a key derived from ``SECRET_KEY``
    (``newsletter.audience.erasure.address_hash``): without the key nobody can test an
    address against the table; with it we can refuse to add the address back.
    """

    __tablename__ = "erased_addresses"

    id: Mapped[int] = mapped_column(primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: the address was blocklisted when erased: it stays refused everywhere, the form too
    blocklisted: Mapped[bool] = mapped_column(default=False)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"<ErasedAddress {self.address_hash[:12]}…>"


def address_hash(address: str) -> str:
    """The keyed hash an erased address is kept as: HMAC-SHA256 of the lower-cased address
    (pass it normalised, as ``addresses.normalise_email`` returns it).

    The key is derived from ``SECRET_KEY``: a new secret key makes every hash kept so far
    unrecognisable (the suppression list then no longer works).
    """
    return address_hasher()(address)


def address_hasher() -> Callable[[str], str]:
    """:func:`address_hash` for many addresses: the key is derived once, and each address
    hashed from a copy of the keyed state (an import hashes 10,000 addresses a chunk)."""
    secret = str(current_app.config["SECRET_KEY"]).encode()
    key = hmac.new(secret, b"newsletter erased-address suppression v1", hashlib.sha256).digest()
    keyed = hmac.new(key, digestmod=hashlib.sha256)

    def hash_one(address: str) -> str:
        state = keyed.copy()
        state.update(address.strip().lower().encode())
        return state.hexdigest()

    return hash_one
