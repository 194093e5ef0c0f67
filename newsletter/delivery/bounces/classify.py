"""Read a message sent to the bounce address: what it reports, about whom.

The contract every intake relies on is :func:`classify` and :class:`Classification`. The
readers behind it, tried in this order (the first that recognises the message decides):

1. ``arf``: a feedback report (RFC 5965, or Microsoft's own form) → ``complaint``;
2. ``dsn``: a delivery status notification (RFC 3464) → ``hard``/``soft`` for the failed
   recipients, ``ignored`` when none failed (delayed, delivered, relayed, expanded);
3. ``nonstandard``: a bounce in an MTA's own words (flufl.bounce) → ``hard``/``soft``, or
   ``ignored`` for a mere warning;
4. ``autoreply``: an out-of-office or other automatic answer → ``ignored``; never asked of
   a delivery report, which an MTA marks ``Auto-Submitted`` too;
5. anything else → ``unreadable``: the intake keeps it for an editor.

Classifying is pure (no database, no network) and never raises: garbage is ``unreadable``
with a reason.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from typing import Literal

from newsletter.delivery.bounces import arf, autoreply, dsn, nonstandard, reading, tokens
from newsletter.delivery.bounces.dsn import Failure
from newsletter.delivery.bounces.tokens import token_of

__all__ = ["Classification", "Failure", "Kind", "classify", "parse", "token_of"]

Kind = Literal["hard", "soft", "complaint", "ignored", "unreadable"]

#: the characters of a subject kept (``unread_bounces.subject``)
_SUBJECT_CHARS = 998
#: the characters of a reason kept
_REASON_CHARS = 1000
_MTA_SENDER = re.compile(
    r"mailer[-_]?daemon|mail[-_]?daemon|postmaster|mdaemon|mail delivery (?:sub)?system",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|returned mail|returned to sender|delivery (?:status|failure|failed|has failed|"
    r"problem|notification)|mail delivery failed|failure notice|non[- ]?deliver|"
    r"(?:could|was) not (?:be )?delivered|mail system error|unzustellbar|nicht zustellbar|"
    r"non remis|no se puede entregar|non recapitabile|onbestelbaar|kan niet worden bezorgd",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Classification:
    """What one message reports.

    ``kind`` is ``unreadable`` when the classifier could not tell (the intake keeps the
    message for an editor). ``recipients`` are the addresses the report names (lower-cased);
    ``token`` is the return-path token found in the message's own envelope recipient or in
    the returned headers, when there is one (the intake resolves it first).

    ``tokens`` are all the candidate tokens found, most trusted first (``token`` is the
    first); ``failures`` say, for a bounce, each recipient's own severity, status and
    diagnostic (``kind`` is ``hard`` only when every one of them is). ``details`` says how
    it was read: ``detector`` (``arf``, ``dsn``, ``flufl``, ``autoreply``), ``token_source``
    (``envelope``, ``delivered-to``, ``returned``, ``report``, ``to``), ``status``,
    ``feedback_type``, ``reporting_mta``.
    """

    kind: Kind
    recipients: tuple[str, ...] = ()
    reason: str = ""
    token: str | None = None
    subject: str = ""
    details: dict[str, str] = field(default_factory=dict)
    tokens: tuple[str, ...] = ()
    failures: tuple[Failure, ...] = ()


def parse(raw: bytes) -> EmailMessage:
    """The message, parsed leniently (a bounce is often malformed)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def classify(raw: bytes, *, envelope_recipient: str | None = None) -> Classification:
    """What ``raw`` reports. ``envelope_recipient`` is the address the MTA delivered it to
    (the ``bounces+TOKEN@…`` return path), when the intake knows it. Never raises."""
    try:
        return _classify(raw, envelope_recipient)
    except Exception as error:  # noqa: BLE001 - whatever the bytes, an answer, not a crash
        token = None
        try:
            token = token_of(envelope_recipient) if envelope_recipient else None
        except Exception:  # noqa: BLE001
            pass
        return Classification(
            "unreadable",
            reason=f"the message could not be read ({type(error).__name__})",
            token=token,
            tokens=(token,) if token else (),
        )


def _classify(raw: bytes, envelope_recipient: str | None) -> Classification:
    if not isinstance(raw, bytes | bytearray) or not bytes(raw[:_PEEK]).strip():
        return Classification("unreadable", reason="an empty message")
    read = _Reading(bytes(raw), envelope_recipient)
    message = read.message

    feedback = arf.read(message)
    if feedback is not None:
        details = {"detector": "arf", "feedback_type": feedback.feedback_type}
        if feedback.user_agent:
            details["user_agent"] = feedback.user_agent
        if not feedback.is_complaint:
            reason = f"a feedback report of type {feedback.feedback_type}: not a complaint"
            return read.result("ignored", reason, details, mail_from=feedback.mail_from)
        return read.result(
            "complaint",
            f"a complaint (feedback type {feedback.feedback_type})",
            details,
            recipients=feedback.recipients,
            mail_from=feedback.mail_from,
        )

    report = dsn.read(message)
    if report is not None and report.failures:
        details = {"detector": "dsn"}
        if mta := report.message_fields.get("reporting-mta", ""):
            details["reporting_mta"] = mta.partition(";")[2].strip() or mta
        return read.bounce(report.failures, details)
    if report is not None and report.other_actions:
        actions = ", ".join(sorted(set(report.other_actions)))
        return read.result("ignored", f"no recipient failed ({actions})", {"detector": "dsn"})
    if _has_part(message, "message/disposition-notification"):
        return read.result("ignored", "a read receipt (RFC 8098)", {"detector": "mdn"})

    delivery_report = _looks_like_delivery_report(message)
    if delivery_report or reading.header(message, "Return-Path").strip() == "<>":
        scanned = nonstandard.scan(read.raw)
        if scanned.failures:
            return read.bounce(scanned.failures, {"detector": "flufl"})
        if scanned.warned:
            reason = "a warning that delivery is still being tried"
            return read.result("ignored", reason, {"detector": "flufl"})

    if not delivery_report and (why := autoreply.reason(message)):
        return read.result("ignored", f"an automatic answer ({why})", {"detector": "autoreply"})

    if delivery_report:
        return read.result("unreadable", "a delivery report naming no failed recipient we read")
    return read.result("unreadable", "not a delivery report, a complaint or an automatic answer")


#: the bytes looked at to tell an empty message
_PEEK = 64 * 1024


class _Reading:
    """One message being classified: what every outcome is built from."""

    def __init__(self, raw: bytes, envelope_recipient: str | None) -> None:
        self.raw = raw
        self.envelope_recipient = envelope_recipient
        self.message = reading.parse_lenient(raw)
        self.subject = reading.header(self.message, "Subject")[:_SUBJECT_CHARS]
        self.returned = reading.returned_headers(self.message)

    def result(
        self,
        kind: Kind,
        reason: str,
        details: dict[str, str] | None = None,
        *,
        recipients: tuple[str, ...] = (),
        failures: tuple[Failure, ...] = (),
        mail_from: str = "",
    ) -> Classification:
        """The classification, with the candidate tokens found for it."""
        candidates = tokens.candidates(
            self.message,
            envelope_recipient=self.envelope_recipient,
            returned=self.returned,
            report_mail_from=mail_from,
            body=reading.body_text(self.message),
        )
        details = dict(details or {})
        if candidates:
            details["token_source"] = candidates[0][1]
        return Classification(
            kind,
            recipients=recipients,
            reason=" ".join(reason.split())[:_REASON_CHARS],
            token=candidates[0][0] if candidates else None,
            subject=self.subject,
            details=details,
            tokens=tuple(token for token, _source in candidates),
            failures=failures,
        )

    def bounce(self, failures: tuple[Failure, ...], details: dict[str, str]) -> Classification:
        """A bounce of ``failures``: hard only when every failed recipient is, since a hard
        bounce stops mail to each address named at once (``failures`` keeps each one's own)."""
        recipients = tuple(dict.fromkeys(failure.recipient for failure in failures))
        kind: Kind = "hard" if all(f.severity == "hard" for f in failures) else "soft"
        first = next(f for f in failures if f.severity == kind)
        if first.status:
            details["status"] = first.status
        reason = first.reason or first.status or "failed"
        return self.result(kind, reason, details, recipients=recipients, failures=failures)


def _has_part(message: Message, content_type: str) -> bool:
    return any(part.get_content_type() == content_type for part in reading.parts(message))


def _looks_like_delivery_report(message: Message) -> bool:
    """Whether an MTA wrote ``message`` about a delivery (even one we cannot read)."""
    if message.get_content_type() == "multipart/report" or dsn.has_status_part(message):
        return True
    if "X-Failed-Recipients" in message:
        return True
    if _MTA_SENDER.search(reading.header(message, "From")):
        return True
    return bool(_BOUNCE_SUBJECT.search(reading.header(message, "Subject")))
