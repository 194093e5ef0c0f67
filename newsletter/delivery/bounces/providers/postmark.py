"""Postmark's bounce and spam-complaint webhooks.

Postmark does not sign its webhooks; it sends the credentials put in the webhook's URL as
HTTP basic auth (``https://USER:PASSWORD@news.example.org/api/v1/bounces/postmark``). We
compare them in constant time with ``BOUNCE_POSTMARK_USER`` and
``BOUNCE_POSTMARK_PASSWORD``; the password turns this webhook on. Use a long random one:
it is the only secret.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from typing import Any

from newsletter.delivery.bounces.models import BounceKind
from newsletter.delivery.bounces.providers.base import (
    ProviderReport,
    Received,
    WebhookMalformed,
    WebhookRefused,
    WebhookRequest,
    clean_address,
    clean_reason,
    json_body,
    text,
)

NAME = "postmark"
DEFAULT_USER = "postmark"

#: Postmark's bounce ``Type`` → our kind; the types not named (auto-responders, address
#: changes, subscribe/unsubscribe requests, virus notices…) are not bounces
KINDS = {
    "HardBounce": BounceKind.HARD,
    "BadEmailAddress": BounceKind.HARD,
    "SoftBounce": BounceKind.SOFT,
    "Transient": BounceKind.SOFT,
    "DnsError": BounceKind.SOFT,
    "Blocked": BounceKind.SOFT,  # refused by the receiver's filters: not the address's fault
    "SpamComplaint": BounceKind.COMPLAINT,
}


def configured(config: Mapping[str, Any]) -> bool:
    """On when ``BOUNCE_POSTMARK_PASSWORD`` is set."""
    return bool(config.get("BOUNCE_POSTMARK_PASSWORD"))


def receive(request: WebhookRequest, config: Mapping[str, Any]) -> Received:
    """Check the basic-auth credentials, then read the bounce or complaint.

    :raises WebhookRefused: no credentials, or not the right ones (a 401).
    :raises WebhookMalformed: the body is not one of Postmark's records.
    """
    check_credentials(request.header("Authorization"), config)
    record = json_body(NAME, request.body)
    if not isinstance(record, dict):
        raise WebhookMalformed(NAME, "the body is not a JSON object")
    return Received(reports=parse(record))


def check_credentials(authorization: str, config: Mapping[str, Any]) -> None:
    """``Authorization: Basic …`` names the configured user and password.

    :raises WebhookRefused: with status 401 when it does not.
    """
    scheme, _, encoded = authorization.partition(" ")
    try:
        user, _, password = (
            base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
        )
    except (binascii.Error, ValueError):
        user = password = ""
    expected_user = str(config.get("BOUNCE_POSTMARK_USER") or DEFAULT_USER)
    expected_password = str(config.get("BOUNCE_POSTMARK_PASSWORD") or "")
    # Both compared, always: the time taken says nothing about which one was wrong.
    user_ok = hmac.compare_digest(user.encode(), expected_user.encode())
    password_ok = hmac.compare_digest(password.encode(), expected_password.encode())
    if scheme.lower() != "basic" or not (user_ok and password_ok) or not expected_password:
        raise WebhookRefused(NAME, "the credentials do not match", status=401)


def parse(record: Mapping[str, Any]) -> list[ProviderReport]:
    """The report of one Postmark bounce or spam-complaint record (none for other types)."""
    record_type = text(record.get("RecordType"))
    if record_type not in ("Bounce", "SpamComplaint"):
        return []
    kind = KINDS.get(text(record.get("Type")))
    address = clean_address(record.get("Email"))
    if kind is None or address is None:
        return []
    reason = clean_reason(
        f"Postmark {text(record.get('Type'))}:", record.get("Description"), record.get("Details")
    )
    message_id = text(record.get("MessageID")) or None
    return [ProviderReport(address, kind, reason, message_id)]
