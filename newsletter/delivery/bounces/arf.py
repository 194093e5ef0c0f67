"""Complaints: ARF feedback reports (RFC 5965) and Microsoft's own feedback-loop form.

A report names the complaining reader in ``Original-Rcpt-To`` when the provider keeps it;
many redact it, and then the returned message's ``To`` is all there is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses

from newsletter.delivery.bounces import reading

#: feedback types that are not a complaint about the mail: the reader says it is not spam,
#: or the report is about the sender's authentication (RFC 6591)
_NOT_COMPLAINTS = frozenset({"not-spam", "auth-failure"})
_ADDRESS = re.compile(r"^[^\s@<>\[\]*]+@[^\s@<>]+\.[^\s@<>]+$")
#: Microsoft's Junk Mail Reporting Program: its report is not ARF unless asked for
_JMRP_SENDERS = re.compile(
    r"staff@hotmail\.com|@(?:[a-z0-9-]+\.)*(?:outlook|hotmail)\.com", re.IGNORECASE
)
_BRACKETED = re.compile(r"<([^<>\s]+@[^<>\s]+)>")
_JMRP_RECIPIENT = "X-HmXmrOriginalRecipient"


@dataclass(frozen=True)
class Feedback:
    """What a feedback report says."""

    feedback_type: str
    recipients: tuple[str, ...]
    #: the report's ``Original-Mail-From`` (the envelope sender we used), when given
    mail_from: str
    user_agent: str
    #: the returned message's headers (or those of the report's ``text/rfc822-headers``)
    returned: tuple[Message, ...]

    @property
    def is_complaint(self) -> bool:
        """Whether the reader complained (abuse, fraud, virus, other, or a type unknown)."""
        return self.feedback_type not in _NOT_COMPLAINTS


def read(message: Message) -> Feedback | None:
    """The feedback report in ``message``, or None when it is not one."""
    report = _report_part(message)
    returned = tuple(reading.returned_headers(message))
    if report is None:
        return _jmrp(message, returned)
    fields = _fields(report)
    recipients = _addresses(fields.get("original-rcpt-to", []))
    recipients = recipients or _addresses(fields.get("removal-recipient", []))
    if not recipients:
        recipients = _returned_to(returned)
    feedback_type = (fields.get("feedback-type") or ["other"])[0].lower() or "other"
    return Feedback(
        feedback_type=feedback_type,
        recipients=recipients,
        mail_from=(fields.get("original-mail-from") or [""])[0],
        user_agent=(fields.get("user-agent") or [""])[0],
        returned=returned,
    )


def _report_part(message: Message) -> Message | None:
    for part in reading.parts(message):
        if part.get_content_type() == "message/feedback-report":
            return part
    return None


def _fields(part: Message) -> dict[str, list[str]]:
    """The report's fields: lower-cased names, each with every value it has."""
    payload = part.get_payload()
    block = payload[0] if isinstance(payload, list) and payload else None
    if not isinstance(block, Message):
        # Unparsed (an encoded part): read the text as a header block.
        block = reading.headers_from_text(reading.text_of(part, 64 * 1024))
    fields: dict[str, list[str]] = {}
    for key, value in list(block.items())[:200]:
        fields.setdefault(key.lower(), []).append(reading.decoded(value))
    return fields


def _jmrp(message: Message, returned: tuple[Message, ...]) -> Feedback | None:
    """Microsoft's feedback-loop report: from its staff address, the complained-of message
    attached, its reader in ``X-HmXmrOriginalRecipient``. Told by the sender and subject,
    not by that header alone: Outlook's own bounces return messages that carry it too."""
    subject = reading.header(message, "Subject").lower()
    if not returned or not (
        _JMRP_SENDERS.search(reading.header(message, "From"))
        and subject.startswith("complaint about message")
    ):
        return None
    named = [address for inner in returned for address in reading.headers(inner, _JMRP_RECIPIENT)]
    recipients = _addresses(named) or _returned_to(returned)
    return Feedback("abuse", recipients, "", "Microsoft JMRP", returned)


def _addresses(values: list[str]) -> tuple[str, ...]:
    found: list[str] = []
    for value in values[:50]:
        value = value[: reading.MAX_HEADER]
        try:
            pairs = getaddresses([value])
        except Exception:  # noqa: BLE001 - nested comments can exhaust the parser's recursion
            pairs = [("", address) for address in _BRACKETED.findall(value)]
        for _name, address in pairs:
            address = address.strip().lower()
            if _ADDRESS.match(address) and address not in found:
                found.append(address)
    return tuple(found)


def _returned_to(returned: tuple[Message, ...]) -> tuple[str, ...]:
    for inner in returned:
        if addresses := _addresses(reading.headers(inner, "To")):
            return addresses
    return ()
