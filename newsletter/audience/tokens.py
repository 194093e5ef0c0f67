"""Signed, expiring tokens for the links we mail: confirm, unsubscribe, manage.

Each is bound to its purpose, the subscriber and the list (see ``newsletter.signing``).
Manage and unsubscribe links also carry the subscriber's ``token_version``: bumping it
(``subscriptions.revoke_links``) makes every such link sent before worthless. Links signed
before versions existed carry none and read as version 0, the column's default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app

from newsletter.errors import InvalidToken
from newsletter.signing import sign, unsign_timed

PURPOSES = ("confirm", "unsubscribe", "manage")


@dataclass(frozen=True)
class TokenData:
    subscriber_id: int
    list_id: int | None
    #: the subscriber's token version when the link was made (0 for links from before)
    version: int = 0
    #: when the token was signed (not compared: two reads of one token are equal)
    issued_at: datetime | None = field(default=None, compare=False)
    #: the issue the link was mailed with (None: not an issue's mail, or a link from before)
    issue_id: int | None = None


def _check_purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")


def make_token(
    purpose: str,
    subscriber_id: int,
    list_id: int | None = None,
    *,
    version: int = 0,
    issue_id: int | None = None,
) -> str:
    """A URL-safe signed token for ``purpose`` bound to the subscriber (and list).

    ``version`` is the subscriber's ``token_version``; confirm tokens carry none (a
    confirmation is for one subscription, and needs no revoking beyond unsubscribing).
    ``issue_id`` names the issue a manage or unsubscribe link was mailed with, so leaving
    can be counted for it; links without it (from before, or other mail) read as None.
    """
    _check_purpose(purpose)
    if purpose == "confirm":
        return sign(purpose, s=subscriber_id, l=list_id)
    if issue_id is not None:
        return sign(purpose, s=subscriber_id, l=list_id, v=version, i=issue_id)
    return sign(purpose, s=subscriber_id, l=list_id, v=version)


def read_token(purpose: str, token: str, max_age: int) -> TokenData:
    """Check a token's signature, age and purpose and return what it is bound to.

    :raises InvalidToken: ``reason`` is "expired" or "invalid".
    """
    _check_purpose(purpose)
    payload, issued_at = unsign_timed(purpose, token, max_age)
    subscriber_id, list_id, version = payload.get("s"), payload.get("l"), payload.get("v", 0)
    issue_id = payload.get("i")
    if (
        not isinstance(subscriber_id, int)
        or not (list_id is None or isinstance(list_id, int))
        or not isinstance(version, int)
        or not (issue_id is None or isinstance(issue_id, int))
    ):
        raise InvalidToken(purpose, "invalid")
    return TokenData(
        subscriber_id, list_id, version=version, issued_at=issued_at, issue_id=issue_id
    )


def _absolute(path: str) -> str:
    # From BASE_URL, not url_for: workers build these links with no request around.
    return f"{current_app.config['BASE_URL']}{path}"


def confirm_url(subscriber_id: int, list_id: int) -> str:
    """The absolute double opt-in link for one subscription."""
    return _absolute(f"/confirm/{make_token('confirm', subscriber_id, list_id)}")


def unsubscribe_url(
    subscriber_id: int, list_id: int | None, *, version: int, issue_id: int | None = None
) -> str:
    """The absolute unsubscribe link (also the RFC 8058 one-click target); None: all lists.

    ``version`` is the subscriber's ``token_version``; ``issue_id`` the issue it is mailed
    with, if any.
    """
    token = make_token("unsubscribe", subscriber_id, list_id, version=version, issue_id=issue_id)
    return _absolute(f"/unsubscribe/{token}")


def manage_url(subscriber_id: int, *, version: int, issue_id: int | None = None) -> str:
    """The absolute link to the subscriber's preferences page (``version``: their
    ``token_version``; ``issue_id``: the issue it is mailed with, if any)."""
    token = make_token("manage", subscriber_id, version=version, issue_id=issue_id)
    return _absolute(f"/manage/{token}")
