"""Read a message sent to the bounce address: what it reports, about whom.

The contract every intake relies on is :func:`classify` and :class:`Classification`. This
first version reads standard DSNs (RFC 3464) with the stdlib; the full classifier (ARF
complaints, auto-replies, non-standard bounces through flufl.bounce) extends it here.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from typing import Literal

Kind = Literal["hard", "soft", "complaint", "ignored", "unreadable"]


@dataclass(frozen=True)
class Classification:
    """What one message reports.

    ``kind`` is ``unreadable`` when the classifier could not tell (the intake keeps the
    message for an editor). ``recipients`` are the addresses the report names (lower-cased);
    ``token`` is the return-path token found in the message's own envelope recipient or in
    the returned headers, when there is one (the intake resolves it first).
    """

    kind: Kind
    recipients: tuple[str, ...] = ()
    reason: str = ""
    token: str | None = None
    subject: str = ""
    details: dict[str, str] = field(default_factory=dict)


def parse(raw: bytes) -> EmailMessage:
    """The message, parsed leniently (a bounce is often malformed)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def classify(raw: bytes, *, envelope_recipient: str | None = None) -> Classification:
    """What ``raw`` reports. ``envelope_recipient`` is the address the MTA delivered it to
    (the ``bounces+TOKEN@…`` return path), when the intake knows it."""

    message = parse(raw)
    subject = str(message.get("Subject", ""))
    token = token_of(envelope_recipient) if envelope_recipient else None
    report = _delivery_status(message)
    if report is None:
        return Classification(
            "unreadable", token=token, subject=subject, reason="not a delivery status notification"
        )
    failed = [fields for fields in report if fields.get("action", "").lower() == "failed"]
    if not failed:
        return Classification(
            "ignored",
            token=token,
            subject=subject,
            reason="no recipient failed (delayed or delivered)",
        )
    recipients = tuple(_address(fields.get("final-recipient", "")) for fields in failed)
    status = failed[0].get("status", "")
    kind: Kind = "hard" if status.startswith("5") else "soft"
    reason = failed[0].get("diagnostic-code", "") or status
    return Classification(kind, tuple(r for r in recipients if r), reason[:1000], token, subject)


def token_of(address: str) -> str | None:
    """The TOKEN of a ``local+TOKEN@domain`` return path, or None."""
    local = address.strip().strip("<>").rpartition("@")[0]
    if "+" not in local:
        return None
    return local.split("+", 1)[1] or None


def _delivery_status(message: Message) -> list[dict[str, str]] | None:
    """The per-recipient fields of the message's ``message/delivery-status`` part."""
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        blocks = (
            [block for block in payload if isinstance(block, Message)]
            if isinstance(payload, list)
            else []
        )
        # The first block is per message; each further one is per recipient.
        return [{key.lower(): str(value) for key, value in block.items()} for block in blocks[1:]]
    return None


def _address(field_value: str) -> str:
    """``rfc822; someone@example.org`` → ``someone@example.org``."""
    return field_value.partition(";")[2].strip().strip("<>").lower()
