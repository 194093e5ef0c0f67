"""Signed, expiring tokens for the links we mail: confirm, unsubscribe, manage.

Each is bound to its purpose, the subscriber and the list (see ``newsletter.signing``).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from newsletter.errors import InvalidToken
from newsletter.signing import sign, unsign

PURPOSES = ("confirm", "unsubscribe", "manage")


@dataclass(frozen=True)
class TokenData:
    subscriber_id: int
    list_id: int | None


def _check_purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")


def make_token(purpose: str, subscriber_id: int, list_id: int | None = None) -> str:
    """A URL-safe signed token for ``purpose`` bound to the subscriber (and list)."""
    _check_purpose(purpose)
    return sign(purpose, s=subscriber_id, l=list_id)


def read_token(purpose: str, token: str, max_age: int) -> TokenData:
    """Check a token's signature, age and purpose and return what it is bound to.

    :raises InvalidToken: ``reason`` is "expired" or "invalid".
    """
    _check_purpose(purpose)
    payload = unsign(purpose, token, max_age)
    subscriber_id, list_id = payload.get("s"), payload.get("l")
    if not isinstance(subscriber_id, int) or not (list_id is None or isinstance(list_id, int)):
        raise InvalidToken(purpose, "invalid")
    return TokenData(subscriber_id=subscriber_id, list_id=list_id)


def _absolute(path: str) -> str:
    # From BASE_URL, not url_for: workers build these links with no request around.
    return f"{current_app.config['BASE_URL']}{path}"


def confirm_url(subscriber_id: int, list_id: int) -> str:
    """The absolute double opt-in link for one subscription."""
    return _absolute(f"/confirm/{make_token('confirm', subscriber_id, list_id)}")


def unsubscribe_url(subscriber_id: int, list_id: int | None) -> str:
    """The absolute unsubscribe link (also the RFC 8058 one-click target); None: all lists."""
    return _absolute(f"/unsubscribe/{make_token('unsubscribe', subscriber_id, list_id)}")


def manage_url(subscriber_id: int) -> str:
    """The absolute link to the subscriber's preferences page."""
    return _absolute(f"/manage/{make_token('manage', subscriber_id)}")
