"""SendGrid's Event Webhook, with its signature checked.

SendGrid signs ``timestamp + body`` with ECDSA (P-256, SHA-256) and sends the signature
(base64 DER) in ``X-Twilio-Email-Event-Webhook-Signature`` and the timestamp in
``X-Twilio-Email-Event-Webhook-Timestamp``. ``BOUNCE_SENDGRID_PUBLIC_KEY`` is the
verification key SendGrid shows when signing is turned on (base64, or PEM); it turns this
webhook on. A timestamp older than ``BOUNCE_WEBHOOK_MAX_AGE`` seconds is refused, and so is
a signature seen before within that window.

Events taken: ``bounce`` (``type`` bounce → hard, blocked → soft), ``dropped`` (for a
bounced or invalid address → hard, for a spam-reporting one → complaint) and
``spamreport``. Every other event (delivered, open, click, deferred…) is read past.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

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
    text,
)

NAME = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


def configured(config: Mapping[str, Any]) -> bool:
    """On when ``BOUNCE_SENDGRID_PUBLIC_KEY`` is set."""
    return bool(config.get("BOUNCE_SENDGRID_PUBLIC_KEY"))


def receive(request: WebhookRequest, config: Mapping[str, Any]) -> Received:
    """Check the signature and the timestamp, then read the events.

    :raises WebhookRefused: no signature, a wrong one, a stale timestamp or a replay.
    :raises WebhookMalformed: the body is not a JSON array of events.
    """
    signature_text = request.header(SIGNATURE_HEADER)
    timestamp = request.header(TIMESTAMP_HEADER)
    if not signature_text or not timestamp:
        raise WebhookRefused(NAME, "the signature or its timestamp is missing")
    max_age = int(config.get("BOUNCE_WEBHOOK_MAX_AGE") or 3600)
    try:
        signed_at = int(timestamp)
    except ValueError:
        raise WebhookRefused(NAME, "the timestamp is not a number") from None
    if abs(request.now - signed_at) > max_age:
        raise WebhookRefused(NAME, "the timestamp is stale (or in the future)")
    try:
        signature = base64.b64decode(signature_text, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookRefused(NAME, "the signature is not base64") from None
    # cryptography is imported on use: at the top it would cost every process about 10 MB,
    # for a webhook most instances never turn on.
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = public_key(str(config["BOUNCE_SENDGRID_PUBLIC_KEY"]))
    try:
        key.verify(signature, timestamp.encode() + request.body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise WebhookRefused(NAME, "the signature does not match") from None
    claim = replay.key_for(NAME, signature_text)
    if not replay.first_time(claim, 2 * max_age):
        raise WebhookRefused(NAME, "this request was taken already (a replay)")
    events = json_body(NAME, request.body)
    if not isinstance(events, list):
        replay.forget(claim)
        raise WebhookMalformed(NAME, "the body is not a JSON array of events")
    reports = [report for event in events if isinstance(event, dict) for report in parse(event)]
    return Received(reports=reports, claims=[claim])


@functools.lru_cache(maxsize=4)
def public_key(text_key: str) -> ec.EllipticCurvePublicKey:
    """The verification key of the setting (base64 DER, as SendGrid shows it, or PEM).

    :raises WebhookRefused: it is not an elliptic-curve public key (a setting to fix).
    """
    from cryptography.hazmat.primitives import serialization  # on use, as in ``receive``
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        if "BEGIN PUBLIC KEY" in text_key:
            key = serialization.load_pem_public_key(text_key.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(text_key.split())))
    except (ValueError, binascii.Error):
        raise WebhookRefused(NAME, "BOUNCE_SENDGRID_PUBLIC_KEY is not a public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise WebhookRefused(NAME, "BOUNCE_SENDGRID_PUBLIC_KEY is not an ECDSA key")
    return key


def parse(event: Mapping[str, Any]) -> list[ProviderReport]:
    """The report of one event (none for the events that are not bounces or complaints)."""
    address = clean_address(event.get("email"))
    if address is None:
        return []
    name = text(event.get("event"))
    kind = _kind(name, event)
    if kind is None:
        return []
    reason = clean_reason(
        f"SendGrid {name}" + (f"/{text(event.get('type'))}" if event.get("type") else "") + ":",
        event.get("status"), event.get("reason"),
    )  # fmt: skip
    message_id = text(event.get("sg_message_id")) or None
    return [ProviderReport(address, kind, reason, message_id)]


def _kind(name: str, event: Mapping[str, Any]) -> BounceKind | None:
    if name == "spamreport":
        return BounceKind.COMPLAINT
    if name == "bounce":
        # "blocked" is a refusal of this message (reputation, content): scored, not fatal.
        return BounceKind.SOFT if text(event.get("type")) == "blocked" else BounceKind.HARD
    if name == "dropped":
        reason = text(event.get("reason")).lower()
        if "spam reporting" in reason:
            return BounceKind.COMPLAINT
        if "bounced address" in reason or "invalid" in reason:
            return BounceKind.HARD
    return None
