"""Signed, expiring tokens for links: one salt per purpose, and the purpose in the payload,
so a token made for one thing is worthless for any other."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from newsletter.errors import InvalidToken


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return _serializer_for(str(current_app.config["SECRET_KEY"]), purpose)


@functools.lru_cache(maxsize=64)
def _serializer_for(secret_key: str, purpose: str) -> URLSafeTimedSerializer:
    # Made once per key and purpose: a send signs two links per message.
    return URLSafeTimedSerializer(secret_key, salt=f"newsletter.{purpose}")


def sign(purpose: str, **payload: Any) -> str:
    """A URL-safe token for ``purpose`` carrying ``payload`` (JSON values)."""
    return str(_serializer(purpose).dumps({"p": purpose, **payload}))


def unsign(purpose: str, token: str, max_age: int) -> dict[str, Any]:
    """The payload of a token made by ``sign(purpose, …)`` at most ``max_age`` seconds ago.

    :raises InvalidToken: ``reason`` is "expired" or "invalid".
    """
    return unsign_timed(purpose, token, max_age)[0]


def unsign_timed(purpose: str, token: str, max_age: int) -> tuple[dict[str, Any], datetime]:
    """Like :func:`unsign`, with the time the token was signed.

    :raises InvalidToken: ``reason`` is "expired" or "invalid".
    """
    try:
        payload, signed_at = _serializer(purpose).loads(
            token, max_age=max_age, return_timestamp=True
        )
    except SignatureExpired:
        raise InvalidToken(purpose, "expired") from None
    except BadSignature:
        raise InvalidToken(purpose, "invalid") from None
    if not isinstance(payload, dict) or payload.get("p") != purpose:
        raise InvalidToken(purpose, "invalid")
    return payload, signed_at
