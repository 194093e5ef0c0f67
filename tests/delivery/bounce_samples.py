"""Bounce and complaint messages of our own, as MTAs and mailbox providers write them, for
the bounce tests: RFC 3464 DSNs, an RFC 5965 ARF report, an auto-reply, and junk."""

from __future__ import annotations

RETURNED = (
    b"From: Example News <news@example.org>\r\n"
    b"To: reader@example.net\r\n"
    b"Subject: This week\r\n"
    b"Message-ID: <abc@example.org>\r\n"
    b"\r\n"
    b"Hello\r\n"
)


def dsn(
    recipient: str,
    *,
    to: str = "bounces@example.org",
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str = "smtp; 550 5.1.1 <{r}>: Recipient address rejected: User unknown",
    delivered_to: str | None = None,
) -> bytes:
    """A DSN (multipart/report; report-type=delivery-status) about ``recipient``, sent to
    ``to`` (the return path it came back to; an MTA may also write ``Delivered-To``)."""
    delivered = f"Delivered-To: {delivered_to}\r\n" if delivered_to else ""
    body = (
        f"{delivered}"
        f"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        f"To: {to}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\n"
        f"Auto-Submitted: auto-replied\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"\r\n'
        f"\r\n"
        f"--dsn\r\n"
        f"Content-Type: text/plain\r\n"
        f"\r\n"
        f"This is the mail system at host mx.example.net. I'm sorry.\r\n"
        f"--dsn\r\n"
        f"Content-Type: message/delivery-status\r\n"
        f"\r\n"
        f"Reporting-MTA: dns; mx.example.net\r\n"
        f"Arrival-Date: Tue, 1 Dec 2026 14:00:00 +0000\r\n"
        f"\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Original-Recipient: rfc822; {recipient}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        f"Diagnostic-Code: {diagnostic.format(r=recipient)}\r\n"
        f"\r\n"
        f"--dsn\r\n"
        f"Content-Type: text/rfc822-headers\r\n"
        f"\r\n"
    )
    return body.encode("ascii") + RETURNED + b"--dsn--\r\n"


def arf(recipient: str, *, to: str = "bounces@example.org") -> bytes:
    """An ARF abuse report (RFC 5965) a mailbox provider sends when ``recipient`` marks our
    message as spam."""
    body = (
        f"From: Feedback Loop <fbl@isp.example.net>\r\n"
        f"To: {to}\r\n"
        f"Subject: FW: This week\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=feedback-report; boundary="arf"\r\n'
        f"\r\n"
        f"--arf\r\n"
        f"Content-Type: text/plain\r\n"
        f"\r\n"
        f"This is an email abuse report.\r\n"
        f"--arf\r\n"
        f"Content-Type: message/feedback-report\r\n"
        f"\r\n"
        f"Feedback-Type: abuse\r\n"
        f"User-Agent: ExampleFBL/1.0\r\n"
        f"Version: 1\r\n"
        f"Original-Rcpt-To: {recipient}\r\n"
        f"Original-Mail-From: {to}\r\n"
        f"--arf\r\n"
        f"Content-Type: message/rfc822\r\n"
        f"\r\n"
        f"From: Example News <news@example.org>\r\n"
        f"To: {recipient}\r\n"
        f"Subject: This week\r\n"
        f"\r\n"
        f"Hello\r\n"
        f"--arf--\r\n"
    )
    return body.encode("ascii")


def unreadable(subject: str = "Re: This week") -> bytes:
    """A reply that is no report at all (a person writing back)."""
    return (
        f"From: Someone <someone@example.net>\r\nTo: bounces@example.org\r\n"
        f"Subject: {subject}\r\n\r\nPlease call me about this.\r\n"
    ).encode("ascii")
