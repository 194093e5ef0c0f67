"""Amazon SES bounce and complaint notifications, delivered by SNS over HTTPS.

SNS signs each message with the private key of a certificate it publishes at
``SigningCertURL``: the signature (``SignatureVersion`` 1 is SHA1withRSA, 2 SHA256withRSA)
is over a canonical string of the message's fields. We fetch the certificate only from an
``https`` URL whose host is one of SNS's own (``sns.<region>.amazonaws.com``; the setting
``BOUNCE_SNS_CERT_HOSTS`` replaces that pattern, for tests on loopback), never following a
redirect, and keep it a day.

A valid signature only proves that *some* SNS topic sent the message: anyone can make a
topic and subscribe our URL to it. So the topic must also be one of ours
(``BOUNCE_SES_TOPICS``), and that setting is what turns this webhook on.

``SubscriptionConfirmation`` is confirmed by a GET of ``SubscribeURL`` (same host rule),
unless ``BOUNCE_SNS_AUTO_CONFIRM`` is off; then the URL is logged for an admin to open.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

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
    mapping,
    text,
    words,
)

log = logging.getLogger(__name__)

NAME = "ses"
#: SNS's own hosts (the default of ``BOUNCE_SNS_CERT_HOSTS``); no dot in the region, so an
#: S3 bucket named ``sns.evil`` (``sns.evil.s3.amazonaws.com``) does not match
DEFAULT_CERT_HOSTS = r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?"
#: a certificate is at most this long; a confirmation answer likewise
MAX_FETCH_BYTES = 64 * 1024
CERT_CACHE_SECONDS = 24 * 3600
_CERT_CACHE_SIZE = 16

#: the fields each message type signs, in the order of the canonical string
SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
#: the hash of each SignatureVersion, by name in ``cryptography.hazmat.primitives.hashes``
_HASHES = {"1": "SHA1", "2": "SHA256"}

_certs: dict[str, tuple[rsa.RSAPublicKey, float]] = {}
_certs_lock = threading.Lock()


def configured(config: Mapping[str, Any]) -> bool:
    """On when at least one topic is named."""
    return bool(topics(config))


def topics(config: Mapping[str, Any]) -> frozenset[str]:
    """The topic ARNs whose notifications are taken (``BOUNCE_SES_TOPICS``)."""
    return frozenset(words(config.get("BOUNCE_SES_TOPICS")))


def receive(request: WebhookRequest, config: Mapping[str, Any]) -> Received:
    """Check an SNS message's topic, age and signature, then act on it.

    :raises WebhookRefused: not one of our topics, stale, replayed, or a signature that does
        not verify with the certificate SNS publishes.
    :raises WebhookMalformed: the body is not an SNS message.
    """
    message = _json_object(request.body)
    kind = message.get("Type")
    if kind not in SIGNED_FIELDS:
        raise WebhookMalformed(NAME, f"unknown SNS message type {str(kind)[:40]!r}")
    if text(message.get("TopicArn")) not in topics(config):
        raise WebhookRefused(NAME, "not one of the topics in BOUNCE_SES_TOPICS")
    max_age = int(config.get("BOUNCE_WEBHOOK_MAX_AGE") or 3600)
    _check_age(message.get("Timestamp"), request.now, max_age)
    verify(message, config)
    if kind == "SubscriptionConfirmation":
        return Received(note=_confirm(message, config))
    if kind == "UnsubscribeConfirmation":
        return Received(note=f"unsubscribed from {message.get('TopicArn')}")
    key = replay.key_for(NAME, str(message.get("MessageId", "")))
    if not replay.first_time(key, 2 * max_age):
        raise WebhookRefused(NAME, "this message was taken already (a replay)")
    return Received(reports=parse_notification(str(message.get("Message", ""))), claims=[key])


def verify(message: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """Check the message's signature with the certificate at its ``SigningCertURL``.

    :raises WebhookRefused: the signature does not verify, or the certificate cannot be had
        from a host SNS uses.
    """
    # cryptography is imported where a request needs it: at the top it would cost every
    # process about 10 MB, for a webhook most instances never turn on.
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    version = str(message.get("SignatureVersion", ""))
    algorithm_name = _HASHES.get(version)
    if algorithm_name is None:
        raise WebhookRefused(NAME, f"unsupported SignatureVersion {version[:10]!r}")
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookRefused(NAME, "the signature is not base64") from None
    url = str(message.get("SigningCertURL", ""))
    _check_url(url, config, "SigningCertURL")
    if not urlsplit(url).path.endswith(".pem"):
        raise WebhookRefused(NAME, "SigningCertURL does not name a .pem certificate")
    key = certificate_key(url, config)
    try:
        algorithm = getattr(hashes, algorithm_name)()
        key.verify(signature, canonical_string(message), padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise WebhookRefused(NAME, "the signature does not match") from None


def canonical_string(message: Mapping[str, Any]) -> bytes:
    """What SNS signs: each signed field present, as ``Name\\nvalue\\n``, in order."""
    lines = []
    for name in SIGNED_FIELDS[str(message.get("Type"))]:
        value = message.get(name)
        if value is None:
            continue  # Subject is optional; SNS leaves out what is not there
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode("utf-8")


def certificate_key(url: str, config: Mapping[str, Any]) -> rsa.RSAPublicKey:
    """The RSA public key of the certificate at ``url`` (fetched once a day at most).

    :raises WebhookRefused: it cannot be fetched, is not a certificate, has expired or does
        not hold an RSA key.
    """
    from cryptography import x509  # imported on use, as in ``verify``
    from cryptography.hazmat.primitives.asymmetric import rsa

    now = time.monotonic()
    with _certs_lock:
        cached = _certs.get(url)
        if cached is not None and now - cached[1] < CERT_CACHE_SECONDS:
            return cached[0]
    try:
        pem = _fetch(url, config)
    except (OSError, urllib.error.URLError, ValueError) as error:
        log.warning("SNS certificate not fetched: %s", type(error).__name__)
        raise WebhookRefused(NAME, "the signing certificate could not be fetched") from None
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise WebhookRefused(NAME, "SigningCertURL did not give a certificate") from None
    now_utc = datetime.now(tz=certificate.not_valid_after_utc.tzinfo)
    if not certificate.not_valid_before_utc <= now_utc <= certificate.not_valid_after_utc:
        raise WebhookRefused(NAME, "the signing certificate is not valid now")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise WebhookRefused(NAME, "the signing certificate does not hold an RSA key")
    with _certs_lock:
        if len(_certs) >= _CERT_CACHE_SIZE:
            _certs.clear()  # a handful of regions at most; never grows without bound
        _certs[url] = (key, now)
    return key


def forget_certificates() -> None:
    """Empty the certificate cache (tests, or after a key rotation gone wrong)."""
    with _certs_lock:
        _certs.clear()


def parse_notification(message: str) -> list[ProviderReport]:
    """The reports of an SES notification (SNS's ``Message``): one per bounced or
    complaining recipient; other notifications (deliveries, sends) report nothing.

    :raises WebhookMalformed: the message is not an SES notification.
    """
    body = _json_object(message.encode("utf-8"))
    kind = body.get("notificationType") or body.get("eventType")
    mail = mapping(body.get("mail"))
    message_id = text(mail.get("messageId")) or None
    source = text(mail.get("source")) or None
    if kind == "Bounce":
        return _bounces(body.get("bounce"), message_id, source)
    if kind == "Complaint":
        return _complaints(body.get("complaint"), message_id, source)
    return []


def _bounces(bounce: Any, message_id: str | None, source: str | None) -> list[ProviderReport]:
    if not isinstance(bounce, dict):
        raise WebhookMalformed(NAME, "a Bounce notification without its bounce")
    bounce_type = text(bounce.get("bounceType"))
    # Permanent: the address is dead. Transient (a full mailbox) and Undetermined: scored.
    kind = BounceKind.HARD if bounce_type == "Permanent" else BounceKind.SOFT
    reports = []
    for recipient in _list(bounce.get("bouncedRecipients")):
        address = clean_address(recipient.get("emailAddress"))
        if address is None:
            continue
        reason = clean_reason(
            f"SES {bounce_type}/{text(bounce.get('bounceSubType'))}",
            recipient.get("status"), recipient.get("diagnosticCode"),
        )  # fmt: skip
        reports.append(ProviderReport(address, kind, reason, message_id, source))
    return reports


def _complaints(complaint: Any, message_id: str | None, source: str | None) -> list[ProviderReport]:
    if not isinstance(complaint, dict):
        raise WebhookMalformed(NAME, "a Complaint notification without its complaint")
    feedback = text(complaint.get("complaintFeedbackType")) or "complaint"
    reason = clean_reason("SES complaint:", feedback, complaint.get("complaintSubType"))
    reports = []
    for recipient in _list(complaint.get("complainedRecipients")):
        address = clean_address(recipient.get("emailAddress"))
        if address is not None:
            reports.append(
                ProviderReport(address, BounceKind.COMPLAINT, reason, message_id, source)
            )
    return reports


# --- the parts ----------------------------------------------------------------------------


def _confirm(message: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    url = str(message.get("SubscribeURL", ""))
    _check_url(url, config, "SubscribeURL")
    topic = message.get("TopicArn")
    if not config.get("BOUNCE_SNS_AUTO_CONFIRM", True):
        log.warning("SNS subscription to %s waits for confirmation: open %s", topic, url)
        return f"confirmation of {topic} left to an admin"
    try:
        _fetch(url, config)
    except (OSError, urllib.error.URLError, ValueError) as error:
        # The subscription stays pending; SNS sends the confirmation again, or an admin
        # opens the URL.
        log.warning("SNS subscription to %s not confirmed (%s): open %s", topic,
                    type(error).__name__, url)  # fmt: skip
        return f"confirmation of {topic} failed"
    return f"subscription to {topic} confirmed"


def _check_url(url: str, config: Mapping[str, Any], name: str) -> None:
    """``url`` is https, on a host SNS uses (or one the setting allows), without userinfo."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        raise WebhookRefused(NAME, f"{name} is not a URL") from None
    if parts.scheme != "https" or parts.username is not None or not host:
        raise WebhookRefused(NAME, f"{name} is not an https URL")
    patterns = words(config.get("BOUNCE_SNS_CERT_HOSTS") or DEFAULT_CERT_HOSTS)
    if not any(re.fullmatch(pattern, host) for pattern in patterns):
        raise WebhookRefused(NAME, f"{name} is not on a host of SNS")


def _fetch(url: str, config: Mapping[str, Any]) -> bytes:
    """GET ``url`` over verified TLS: no proxy, no redirect, capped, with a timeout."""
    context = ssl.create_default_context(cafile=config.get("BOUNCE_SNS_CA_FILE") or None)
    # Built by hand: no redirect handler (a 3xx is an error), no proxies from the
    # environment, https only.
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.HTTPSHandler(context=context),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    timeout = float(config.get("BOUNCE_WEBHOOK_TIMEOUT") or 5)
    request = urllib.request.Request(url, headers={"User-Agent": "newsletter-bounces/1.0"})
    with opener.open(request, timeout=timeout) as answer:
        body = bytes(answer.read(MAX_FETCH_BYTES + 1))
    if len(body) > MAX_FETCH_BYTES:
        raise ValueError("the answer is too long")
    return body


def _check_age(timestamp: Any, now: float, max_age: int) -> None:
    try:
        sent = datetime.fromisoformat(str(timestamp)).timestamp()
    except ValueError:
        raise WebhookRefused(NAME, "the message has no valid Timestamp") from None
    if abs(now - sent) > max_age:
        raise WebhookRefused(NAME, "the message is too old (or from the future)")


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise WebhookMalformed(NAME, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise WebhookMalformed(NAME, "the body is not a JSON object")
    return data


def _list(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
