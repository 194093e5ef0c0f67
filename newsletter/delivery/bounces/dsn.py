"""Delivery status notifications (RFC 3464, and RFC 6533's ``message/global-delivery-status``).

Only ``Action: failed`` is a bounce; ``delayed``, ``delivered``, ``relayed`` and ``expanded``
say the message is on its way (or arrived) and are ignored.
"""

from __future__ import annotations

import email.policy
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser

from newsletter.delivery.bounces import reading
from newsletter.delivery.bounces.status import Severity, severity, status_code

_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
#: one recipient block per recipient; a report naming more is cut here
MAX_RECIPIENTS = 100
#: the actions that say a message is on its way, or arrived
_ON_ITS_WAY = frozenset({"delayed", "delivered", "relayed", "expanded"})
_ADDRESS = re.compile(r"^[^\s@<>]+@[^\s@<>]+$")


@dataclass(frozen=True)
class Failure:
    """One recipient a report says failed: the address, hard or soft, and why."""

    recipient: str
    severity: Severity
    status: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Report:
    """What a delivery status notification says."""

    failures: tuple[Failure, ...]
    #: the actions of the recipients that did not fail (``delayed``, ``delivered``, …)
    other_actions: tuple[str, ...]
    #: the per-message fields (``Reporting-MTA``, ``Original-Envelope-Id``, …), lower-cased
    message_fields: dict[str, str]


def read(message: Message) -> Report | None:
    """The report in ``message``'s delivery-status part, or None when it has none (or one
    with no recipient block at all)."""
    for part in reading.parts(message):
        if part.get_content_type() in _STATUS_TYPES:
            blocks = _blocks(part)
            if len(blocks) < 2:
                return None
            return _report(blocks[0], blocks[1 : MAX_RECIPIENTS + 1])
    return None


def has_status_part(message: Message) -> bool:
    """Whether ``message`` carries a delivery-status part (read or not)."""
    return any(part.get_content_type() in _STATUS_TYPES for part in reading.parts(message))


def _report(per_message: dict[str, str], per_recipient: list[dict[str, str]]) -> Report:
    failures: list[Failure] = []
    others: list[str] = []
    for fields in per_recipient:
        action = fields.get("action", "").split("(")[0].strip().lower()
        if action in _ON_ITS_WAY:
            others.append(action)
            continue
        if action != "failed":
            continue  # no action, or one RFC 3464 does not know: nothing to go on
        recipient = _address(fields.get("original-recipient", "")) or _address(
            fields.get("final-recipient", "")
        )
        if not recipient:
            continue
        diagnostic = fields.get("diagnostic-code", "")
        status = status_code(fields.get("status", ""), diagnostic)
        failures.append(
            Failure(recipient, severity(status, diagnostic), status, diagnostic or status)
        )
    return Report(tuple(failures), tuple(others), per_message)


def _blocks(part: Message) -> list[dict[str, str]]:
    """The field blocks of a delivery-status part, each with lower-cased names."""
    payload = part.get_payload()
    if isinstance(payload, list):
        messages = [block for block in payload if isinstance(block, Message)]
    else:
        # Not parsed into blocks (message/global-delivery-status, or an encoded part):
        # the fields are groups separated by blank lines.
        text = reading.text_of(part, 256 * 1024)
        parser = HeaderParser(policy=email.policy.compat32)
        groups = re.split(r"\r?\n[ \t]*\r?\n", text.strip())
        messages = [parser.parsestr(group) for group in groups if group.strip()]
    return [
        {key.lower(): reading.decoded(value) for key, value in block.items()}
        for block in messages[: MAX_RECIPIENTS + 1]
    ]


def _address(field_value: str) -> str:
    """``rfc822; someone@example.org`` → ``someone@example.org`` ("" when not an address)."""
    kind, separator, value = field_value.partition(";")
    if not separator:
        value = kind
    elif kind.strip().lower() not in ("rfc822", "utf-8", "x-unknown", ""):
        return ""  # an X.400 or other address type we never send to
    address = value.strip().strip("<>").strip().lower()
    return address if _ADDRESS.match(address) else ""
