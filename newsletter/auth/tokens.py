"""API tokens: named, scoped, optionally expiring, revocable; only their SHA-256 is kept.

A token is random (``nl_`` and 43 URL-safe characters), so a fast hash is as good as a
slow one and a lookup by hash is enough. Tokens made before names and scopes existed have
an empty name and every scope (the column's default), so they keep working as they did.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from newsletter.auth import scopes
from newsletter.auth.models import ApiToken, User
from newsletter.errors import NotFound, ValidationError
from newsletter.extensions import db
from newsletter.models import utcnow

TOKEN_PREFIX = "nl_"
TOKEN_PREFIX_LENGTH = 11  # "nl_" and 8 random characters: enough to tell tokens apart
MAX_TOKEN_LENGTH = 200  # longer bearer values are refused before hashing
MAX_NAME_LENGTH = 100
MAX_EXPIRES_DAYS = 3650
#: how stale ``last_used_at`` may get: one write a minute per token, not one per call
LAST_USED_PRECISION = timedelta(minutes=1)


@dataclass(frozen=True)
class NewToken:
    """A token just made: the row, and the secret itself (this is the one chance to see it)."""

    row: ApiToken
    secret: str


def token_hash(token: str) -> str:
    """The SHA-256 kept in place of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    user: User,
    *,
    name: str = "",
    scope_names: Iterable[str] = scopes.ALL_SCOPES,
    expires_days: int | None = None,
) -> NewToken:
    """A new token for ``user`` with these scopes, expiring after ``expires_days`` if given.

    :raises ValidationError: an unknown or missing scope (field ``scopes``), a name too long
        (``name``), or an expiry out of range (``expires_days``).
    """
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationError(
            f"the name must have at most {MAX_NAME_LENGTH} characters", field="name"
        )
    try:
        granted = scopes.normalise(tuple(scope_names))
    except ValueError as error:
        raise ValidationError(str(error), field="scopes") from None
    expires_at = None
    if expires_days is not None:
        if not 1 <= expires_days <= MAX_EXPIRES_DAYS:
            raise ValidationError(
                f"a token expires after 1 to {MAX_EXPIRES_DAYS} days", field="expires_days"
            )
        expires_at = utcnow() + timedelta(days=expires_days)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user=user,
        token_hash=token_hash(secret),
        prefix=secret[:TOKEN_PREFIX_LENGTH],
        name=name,
        scopes=granted,
        expires_at=expires_at,
    )
    db.session.add(row)
    db.session.commit()
    return NewToken(row=row, secret=secret)


def token_for(secret: str) -> ApiToken | None:
    """The live token row for a bearer value, or None when it is unknown, expired, revoked
    or its owner is deactivated; records (to the minute) when it was used."""
    if not secret or len(secret) > MAX_TOKEN_LENGTH or not secret.startswith(TOKEN_PREFIX):
        return None
    digest = token_hash(secret)
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    # The lookup is by hash already; compare again in constant time for good measure.
    if row is None or not hmac.compare_digest(row.token_hash, digest) or not row.user.active:
        return None
    now = utcnow()
    if status(row, now) != "active":
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_PRECISION:
        row.last_used_at = now
        db.session.commit()
    return row


def status(row: ApiToken, now: datetime | None = None) -> str:
    """``active``, ``expired`` or ``revoked``."""
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= (now or utcnow()):
        return "expired"
    return "active"


def list_tokens(user: User | None = None) -> list[ApiToken]:
    """Every token (or ``user``'s), oldest first, owners loaded."""
    query = select(ApiToken).options(joinedload(ApiToken.user)).order_by(ApiToken.id)
    if user is not None:
        query = query.where(ApiToken.user_id == user.id)
    return list(db.session.scalars(query))


def revoke_token(token_id: int, user: User | None = None) -> ApiToken:
    """Revoke a token now (revoking one already revoked changes nothing).

    :param user: when given, only a token of this user may be revoked.
    :raises NotFound: no such token (or not ``user``'s: the same answer, so ids reveal nothing).
    """
    row = db.session.get(ApiToken, token_id)
    if row is None or (user is not None and row.user_id != user.id):
        raise NotFound("token", token_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        db.session.commit()
    return row
