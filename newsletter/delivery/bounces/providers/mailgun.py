"""Mailgun's webhooks (``failed`` and ``complained`` events), with their signature checked.

Each request carries ``signature: {timestamp, token, signature}``, the signature being the
hex HMAC-SHA256 of ``timestamp + token`` under the webhook signing key
(``BOUNCE_MAILGUN_SIGNING_KEY``, which turns this webhook on). A timestamp older than
``BOUNCE_WEBHOOK_MAX_AGE`` seconds is refused, and so is a token seen before: Mailgun's own
advice against replays.

``failed`` with ``severity: permanent`` is a hard bounce, ``temporary`` a soft one;
``complained`` a complaint. Other events are read past.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from newsletter.delivery.bounces.models import BounceKind
from newsletter.delivery.bounces.providers import replay
from newsletter.delivery.bounces.providers.base import (
    ProviderReport,
    Received,
    WebhookMalformed,
    WebhookRefused,
    WebhookRequest,
    clean_address,
    clean_reason,
    json_body,
    mapping,
    text,
)

NAME = "mailgun"


def configured(config: Mapping[str, Any]) -> bool:
    """On when ``BOUNCE_MAILGUN_SIGNING_KEY`` is set."""
    return bool(config.get("BOUNCE_MAILGUN_SIGNING_KEY"))


def receive(request: WebhookRequest, config: Mapping[str, Any]) -> Received:
    """Check the signature, its age and its token, then read the event.

    :raises WebhookRefused: no signature, a wrong one, stale, or a token seen before.
    :raises WebhookMalformed: the body is not a Mailgun webhook.
    """
    body = json_body(NAME, request.body)
    if not isinstance(body, dict) or not isinstance(body.get("signature"), dict):
        raise WebhookRefused(NAME, "the request carries no signature")
    signed = body["signature"]
    timestamp, token = text(signed.get("timestamp")), text(signed.get("token"))
    given = text(signed.get("signature"))
    if not timestamp or not token or not given:
        raise WebhookRefused(NAME, "the signature is incomplete")
    key = str(config["BOUNCE_MAILGUN_SIGNING_KEY"]).encode()
    expected = hmac.new(key, (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.lower().encode()):
        raise WebhookRefused(NAME, "the signature does not match")
    max_age = int(config.get("BOUNCE_WEBHOOK_MAX_AGE") or 3600)
    try:
        signed_at = float(timestamp)
    except ValueError:
        raise WebhookRefused(NAME, "the timestamp is not a number") from None
    if abs(request.now - signed_at) > max_age:
        raise WebhookRefused(NAME, "the timestamp is stale (or in the future)")
    claim = replay.key_for(NAME, token)
    if not replay.first_time(claim, 2 * max_age):
        raise WebhookRefused(NAME, "this token was used already (a replay)")
    event = body.get("event-data")
    if not isinstance(event, dict):
        replay.forget(claim)
        raise WebhookMalformed(NAME, "the request carries no event-data")
    return Received(reports=parse(event), claims=[claim])


def parse(event: Mapping[str, Any]) -> list[ProviderReport]:
    """The report of one event (none for events that are not failures or complaints)."""
    name = text(event.get("event"))
    address = clean_address(event.get("recipient"))
    if address is None:
        return []
    envelope = mapping(event.get("envelope"))
    headers = mapping(mapping(event.get("message")).get("headers"))
    message_id = text(headers.get("message-id")) or None
    return_path = text(envelope.get("sender")) or None
    if name == "complained":
        reason = clean_reason("Mailgun complaint")
        return [ProviderReport(address, BounceKind.COMPLAINT, reason, message_id, return_path)]
    if name != "failed":
        return []
    severity = text(event.get("severity"))
    kind = BounceKind.HARD if severity == "permanent" else BounceKind.SOFT
    status = mapping(event.get("delivery-status"))
    reason = clean_reason(
        f"Mailgun failed/{severity or 'unknown'}:", status.get("code"),
        status.get("description") or status.get("message"), event.get("reason"),
    )  # fmt: skip
    return [ProviderReport(address, kind, reason, message_id, return_path)]
