"""Provider webhook requests as each provider signs them, for the webhook tests.

Each ``*_request`` gives ``(body, headers)`` the way that provider sends them, signed with
keys the test made (an SNS signing certificate served from a local HTTPS server, a SendGrid
ECDSA key pair, a Mailgun signing key). The payloads follow each provider's documented
examples, trimmed to what we read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from newsletter.delivery.bounces.providers.ses import canonical_string

TOPIC = "arn:aws:sns:eu-west-1:123456789012:newsletter-bounces"


# --- SES through SNS ----------------------------------------------------------------------


def ses_bounce(
    *recipients: str, bounce_type: str = "Permanent", source: str = "news@example.org"
) -> dict[str, Any]:
    """An SES ``Bounce`` notification for ``recipients``."""
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General" if bounce_type == "Permanent" else "MailboxFull",
            "bouncedRecipients": [
                {
                    "emailAddress": address,
                    "action": "failed",
                    "status": "5.1.1" if bounce_type == "Permanent" else "4.2.2",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown"
                    if bounce_type == "Permanent"
                    else "smtp; 452 4.2.2 mailbox full",
                }
                for address in recipients
            ],
            "timestamp": "2026-12-01T10:00:00.000Z",
            "feedbackId": "0100017a-bounce",
        },
        "mail": {
            "timestamp": "2026-12-01T09:59:58.000Z",
            "messageId": "0100017a-ses-message-id",
            "source": source,
            "destination": list(recipients),
        },
    }


def ses_complaint(*recipients: str) -> dict[str, Any]:
    """An SES ``Complaint`` notification (an abuse report) for ``recipients``."""
    return {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": address} for address in recipients],
            "complaintFeedbackType": "abuse",
            "timestamp": "2026-12-01T10:00:00.000Z",
            "feedbackId": "0100017a-complaint",
        },
        "mail": {"messageId": "0100017a-ses-message-id", "source": "news@example.org"},
    }


def sns_message(
    kind: str,
    *,
    cert_url: str,
    key: rsa.RSAPrivateKey,
    message: str = "",
    version: str = "1",
    topic: str = TOPIC,
    subscribe_url: str | None = None,
    timestamp: datetime | None = None,
    subject: str | None = "Amazon SES Email Event Notification",
) -> dict[str, Any]:
    """An SNS HTTP(S) message of ``kind`` signed as SNS signs (version 1 SHA1, 2 SHA256)."""
    when = (timestamp or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    body: dict[str, Any] = {
        "Type": kind,
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic,
        "Message": message,
        "Timestamp": when,
        "SignatureVersion": version,
        "SigningCertURL": cert_url,
    }
    if kind == "Notification":
        if subject is not None:
            body["Subject"] = subject
        body["UnsubscribeURL"] = cert_url.rsplit("/", 1)[0] + "/?Action=Unsubscribe"
    else:
        body["Token"] = secrets.token_hex(16)
        body["SubscribeURL"] = subscribe_url or ""
        body["Message"] = message or f"You have chosen to subscribe to the topic {topic}."
    return sign_sns(body, key)


def sign_sns(body: dict[str, Any], key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """``body`` with the ``Signature`` of its canonical string."""
    algorithm = hashes.SHA1() if body["SignatureVersion"] == "1" else hashes.SHA256()
    signature = key.sign(canonical_string(body), padding.PKCS1v15(), algorithm)
    return {**body, "Signature": base64.b64encode(signature).decode()}


def sns_request(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """The POST SNS makes: JSON as text/plain, with its message-type headers."""
    return json.dumps(body).encode(), {
        "Content-Type": "text/plain; charset=UTF-8",
        "x-amz-sns-message-type": body["Type"],
        "x-amz-sns-message-id": body["MessageId"],
        "x-amz-sns-topic-arn": body["TopicArn"],
    }


# --- Postmark -------------------------------------------------------------------------------


def postmark_bounce(email: str, kind: str = "HardBounce") -> dict[str, Any]:
    """A Postmark bounce webhook record (or a spam complaint, for ``SpamComplaint``)."""
    return {
        "RecordType": "SpamComplaint" if kind == "SpamComplaint" else "Bounce",
        "ID": 4323372036854775807,
        "Type": kind,
        "TypeCode": {"HardBounce": 1, "SoftBounce": 4096, "Transient": 2}.get(kind, 100001),
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
        "Email": email,
        "From": "news@example.org",
        "BouncedAt": "2026-12-01T10:00:00.0000000Z",
        "Inactive": kind == "HardBounce",
        "MessageStream": "broadcast",
    }


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}


# --- SendGrid -------------------------------------------------------------------------------


def sendgrid_keys() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """An ECDSA P-256 key pair: the private key, and the public one as SendGrid shows it."""
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(der).decode()


def sendgrid_event(email: str, event: str, **fields: Any) -> dict[str, Any]:
    return {
        "email": email,
        "timestamp": int(time.time()),
        "event": event,
        "sg_event_id": secrets.token_urlsafe(16),
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        **fields,
    }


def sendgrid_request(
    events: list[dict[str, Any]], key: ec.EllipticCurvePrivateKey, *, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The Event Webhook's POST: the events, signed over timestamp + body."""
    body = json.dumps(events).encode()
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return body, {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
    }


# --- Mailgun --------------------------------------------------------------------------------

MAILGUN_KEY = "key-0123456789abcdef0123456789abcdef"


def mailgun_request(
    event: dict[str, Any],
    *,
    key: str = MAILGUN_KEY,
    timestamp: int | None = None,
    token: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Mailgun's JSON webhook POST, signed as Mailgun signs (HMAC of timestamp + token)."""
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    token = token or secrets.token_hex(25)
    signature = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    body = {"signature": {"timestamp": stamp, "token": token, "signature": signature},
            "event-data": event}  # fmt: skip
    return json.dumps(body).encode(), {"Content-Type": "application/json"}


def mailgun_failed(email: str, severity: str = "permanent", sender: str = "") -> dict[str, Any]:
    return {
        "event": "failed",
        "id": "G9Bn5sl1TC6nu79C8C0bwg",
        "timestamp": time.time(),
        "severity": severity,
        "reason": "bounce" if severity == "permanent" else "generic",
        "recipient": email,
        "envelope": {"sender": sender or "news@example.org", "targets": email},
        "message": {"headers": {"message-id": "20261201100000.1.ABC@mg.example.org"}},
        "delivery-status": {
            "code": 550 if severity == "permanent" else 452,
            "message": "5.1.1 The email account does not exist"
            if severity == "permanent"
            else "4.2.2 Mailbox full",
            "description": "",
        },
    }


def mailgun_complained(email: str) -> dict[str, Any]:
    return {
        "event": "complained",
        "id": "-Agny091SquKnsrW2NEKUA",
        "timestamp": time.time(),
        "recipient": email,
        "message": {"headers": {"message-id": "20261201100000.1.ABC@mg.example.org"}},
    }
