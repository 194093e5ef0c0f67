"""The Standard Webhooks signature: HMAC-SHA256 of ``{webhook-id}.{webhook-timestamp}.{body}``
with the endpoint's key, sent as ``v1,<base64>``; secrets shown as ``whsec_<base64 key>``.

During a rotation a message carries one signature per live secret, space-separated, as the
specification allows, so a receiver still holding the old secret keeps verifying.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable

PREFIX = "whsec_"
#: the specification asks for 24 to 64 bytes of key
KEY_BYTES = 32


def new_secret() -> str:
    """A fresh random secret, serialised as the receiver is given it (``whsec_…``)."""
    return PREFIX + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def key_of(secret: str) -> bytes:
    """The HMAC key a ``whsec_`` secret stands for.

    :raises ValueError: not a ``whsec_`` secret of valid base64.
    """
    if not secret.startswith(PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    return base64.b64decode(secret[len(PREFIX) :], validate=True)


def new_event_id() -> str:
    """A ``webhook-id``: unique, and free of the ``.`` that delimits the signed content."""
    return "msg_" + secrets.token_urlsafe(18).replace("-", "A").replace("_", "B")


def signature(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of the message with ``secret``."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(key_of(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(
    secrets_in_use: Iterable[str], event_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three ``webhook-*`` headers of one attempt (one signature per live secret)."""
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            signature(secret, event_id, timestamp, body) for secret in secrets_in_use
        ),
    }
