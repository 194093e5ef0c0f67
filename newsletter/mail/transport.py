"""Where messages go: SMTP relays (lazily connected, one connection for many messages) or
the Maildir outbox.

A transport belongs to one thread. SMTP errors are never swallowed: each becomes a
``TemporaryDeliveryError`` (4xx, lost connection: try later) or a ``PermanentDeliveryError``
(5xx for this recipient or message), and on any error that leaves the session in doubt the
connection is closed first, so the next send starts on a fresh one.
"""

from __future__ import annotations

import mailbox
import re
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from newsletter.errors import (
    PermanentDeliveryError,
    RelayUnavailable,
    TemporaryDeliveryError,
)

#: called once the content is out and before its end, which lets the relay accept it
BeforeEnd = Callable[[], None] | None
#: called while the relay reads the content (``Transport.send``)
WhileWaiting = Callable[[], None] | None
#: an envelope: (sender, recipient)
Envelope = tuple[str, str]


@dataclass(frozen=True)
class Relay:
    """One relay from ``NEWSLETTER_SMTP_URL``: ``smtp://user:pass@host:587?starttls=true``,
    ``smtps://…`` (implicit TLS), or ``maildir:///path``."""

    scheme: str
    host: str = ""
    port: int = 0
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    path: str = ""  # maildir only

    @property
    def name(self) -> str:
        return self.path if self.scheme == "maildir" else f"{self.host}:{self.port}"


def parse_relay_urls(value: str | None) -> list[Relay]:
    """Parse a comma-separated list of relay URLs; empty or None means the outbox.

    :raises ValueError: with a sentence saying what is wrong with which URL.
    """
    if not value or not value.strip():
        return []
    return [_parse_relay_url(part.strip()) for part in value.split(",") if part.strip()]


def _parse_relay_url(url: str) -> Relay:
    parts = urlsplit(url)
    if parts.scheme == "maildir":
        if not parts.path:
            raise ValueError(f"{url!r} names no folder; use maildir:///path/to/outbox")
        return Relay(scheme="maildir", path=unquote(parts.path))
    if parts.scheme not in {"smtp", "smtps"}:
        raise ValueError(f"unsupported scheme in {url!r}; use smtp://, smtps:// or maildir://")
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port") from None
    query = parse_qs(parts.query)
    starttls = query.get("starttls", ["false"])[0].lower() in {"1", "true", "yes"}
    return Relay(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or (465 if parts.scheme == "smtps" else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        starttls=starttls,
    )


class Transport(Protocol):
    #: the envelope sent ahead with the last message (``then``) whose replies are unread
    pending: Envelope | None

    def send(
        self,
        sender: str,
        recipient: str,
        message: bytes,
        before_end: BeforeEnd = None,
        *,
        then: Envelope | None = None,
        while_waiting: WhileWaiting = None,
    ) -> str:
        """Send one message (CRLF line ends); return the relay's reply (``250 2.0.0 Ok``).

        ``before_end`` is called once the relay has taken the envelope and the content has
        gone out, before the end of the content (the line with a single dot): nothing can
        be delivered before it returns, and if it raises, the transaction is dropped and
        its exception propagates.

        ``then`` is the next message's envelope: a relay with PIPELINING gets it in the same
        write as this message's end, saving a round trip (``pending`` says whether it went).
        The next ``send`` must be for that envelope; any other send or ``close`` has to drop
        the connection, the only way to cancel a transaction that has reached DATA.
        ``while_waiting`` is called, at most once, while the relay reads the content, before
        ``before_end``: work for the next message can overlap the relay's. It must not raise.

        :raises TemporaryDeliveryError: 4xx or a lost connection (retry later).
        :raises PermanentDeliveryError: 5xx for this recipient (never retried).
        """
        ...

    def close(self) -> None: ...


def configured_relays(config: Any) -> list[Relay]:
    """The relays of ``SMTP_URL``, or the Maildir outbox at ``OUTBOX_PATH`` when none is set."""
    relays = parse_relay_urls(config.get("SMTP_URL"))
    return relays or [Relay(scheme="maildir", path=str(config["OUTBOX_PATH"]))]


def open_transport(config: Any) -> Transport:
    """A transport to the first configured relay (or the outbox), for one-off messages.

    Bulk and transactional mail go through ``newsletter.delivery.outbound`` instead, which
    spreads them over every relay under their rate limits.
    """
    return transport_for(configured_relays(config)[0], config)


def transport_for(relay: Relay, config: Any) -> Transport:
    """A new, not yet connected transport to ``relay`` with the app's SMTP settings."""
    if relay.scheme == "maildir":
        return MaildirTransport(relay.path)
    return SMTPTransport(
        relay,
        timeout=float(config.get("SMTP_TIMEOUT") or 30),
        local_hostname=_helo_name(config),
    )


def _helo_name(config: Any) -> str:
    """The EHLO name: ``SMTP_HELO_NAME``, else the host of ``BASE_URL``.

    smtplib would ask ``socket.getfqdn()``, a DNS look-up that can hang for seconds.
    """
    name = config.get("SMTP_HELO_NAME") or urlsplit(str(config.get("BASE_URL") or "")).hostname
    return str(name or "localhost")


def _reply_text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())


def _delivery_error(
    code: int, reply: bytes | str
) -> TemporaryDeliveryError | PermanentDeliveryError:
    """5xx is permanent; anything else (4xx, odd codes, -1 for a lost connection) temporary."""
    text = _reply_text(reply)
    if 500 <= code <= 599:
        return PermanentDeliveryError(code, text)
    if code == 421:  # the relay is shutting the session: its trouble, not the recipient's
        return RelayUnavailable(code, text)
    return TemporaryDeliveryError(code, text)


class SMTPTransport:
    """One SMTP connection to one relay, opened on the first send and reused after."""

    def __init__(
        self,
        relay: Relay,
        *,
        timeout: float = 30,
        local_hostname: str = "localhost",
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.relay = relay
        self.timeout = timeout
        self.local_hostname = local_hostname
        self.tls_context = tls_context or ssl.create_default_context()
        self._smtp: smtplib.SMTP | None = None
        self._sent_on_connection = 0
        self._step = "MAIL"
        self.pending: Envelope | None = None
        #: how many connections this transport has opened (tests and the bench read it)
        self.connections = 0

    # -- connection ---------------------------------------------------------------------
    def _connect(self) -> smtplib.SMTP:
        relay = self.relay
        try:
            smtp: smtplib.SMTP
            if relay.scheme == "smtps":
                smtp = smtplib.SMTP_SSL(
                    relay.host, relay.port, local_hostname=self.local_hostname,
                    timeout=self.timeout, context=self.tls_context,
                )  # fmt: skip
            else:
                smtp = smtplib.SMTP(
                    relay.host, relay.port, local_hostname=self.local_hostname,
                    timeout=self.timeout,
                )  # fmt: skip
            try:
                # A message's end goes out as a small write of its own right after the
                # content: Nagle's algorithm would hold it for the relay's delayed ACK.
                if smtp.sock is not None:
                    smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                smtp.ehlo()
                if relay.starttls:
                    smtp.starttls(context=self.tls_context)
                    smtp.ehlo()
                if relay.username:
                    smtp.login(relay.username, relay.password or "")
            except BaseException:
                smtp.close()
                raise
        except smtplib.SMTPResponseException as error:
            # A refused greeting, EHLO or login (wrong credentials) is the relay's state or
            # set-up, not the recipient's fault: never a permanent failure that would mark
            # (and blocklist) every address, and no recipient's attempt is used up.
            raise RelayUnavailable(error.smtp_code, _reply_text(error.smtp_error)) from None
        except (smtplib.SMTPException, OSError) as error:
            reason = f"cannot connect to {relay.name}: {error}"
            raise RelayUnavailable(-1, reason) from None
        self.connections += 1
        self._sent_on_connection = 0
        return smtp

    def close(self) -> None:
        """Say QUIT (or just drop the connection when the relay is gone, or when an envelope
        sent ahead may have reached DATA: QUIT would be taken as content)."""
        if self.pending is not None:
            self._abort()
            return
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    def _abort(self) -> None:
        self.pending = None
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.close()
            except OSError:  # pragma: no cover - closing a dead socket
                pass

    # -- sending ------------------------------------------------------------------------
    def send(
        self,
        sender: str,
        recipient: str,
        message: bytes,
        before_end: BeforeEnd = None,
        *,
        then: Envelope | None = None,
        while_waiting: WhileWaiting = None,
    ) -> str:
        """Send one message to one recipient; return the relay's reply to DATA.

        ``before_end``, ``then`` and ``while_waiting``: see ``Transport.send``.

        :raises TemporaryDeliveryError: 4xx, or the connection failed (retry later).
        :raises PermanentDeliveryError: 5xx for this recipient or message (never retried).
        """
        if self.pending is not None and self.pending != (sender, recipient):
            self._abort()  # an envelope sent ahead for another message: nothing else cancels it
        try:
            return self._send_once(sender, recipient, message, before_end, then, while_waiting)
        except _StaleConnection:
            # The relay dropped an idle connection before accepting anything: reconnect once.
            return self._send_once(sender, recipient, message, before_end, then, while_waiting)

    def _send_once(
        self,
        sender: str,
        recipient: str,
        message: bytes,
        before_end: BeforeEnd,
        then: Envelope | None,
        while_waiting: WhileWaiting,
    ) -> str:
        if self._smtp is None:
            self._smtp = self._connect()
        smtp = self._smtp
        reused = self._sent_on_connection > 0
        self._step = step = "MAIL"
        try:
            options = self._mail_options(smtp, sender, recipient)
            if smtp.does_esmtp and smtp.has_extn("pipelining") and message.endswith(b"\r\n"):
                if self.pending is None:
                    smtp.send(_envelope(sender, recipient, options))
                self.pending = None  # sent now or ahead: its replies are read next
                code, reply = self._pipelined(smtp, message, before_end, then, while_waiting)
            else:
                code, reply = smtp.mail(sender, options)
                if code != 250:
                    self._reset_or_abort(smtp)
                    raise _delivery_error(code, reply)
                step = "RCPT"
                code, reply = smtp.rcpt(recipient)
                if code not in (250, 251):
                    # A refused recipient leaves the session clean after RSET: keep it.
                    self._reset_or_abort(smtp)
                    raise _delivery_error(code, reply)
                step = "DATA"
                code, reply = smtp.docmd("DATA")
                if code != 354:
                    self._reset_or_abort(smtp)
                    raise _delivery_error(code, reply)
                code, reply = self._content(smtp, _crlf_lines(message), before_end)
        except smtplib.SMTPServerDisconnected as error:
            self._abort()
            step = max(step, self._step, key=_STEPS.index)
            if reused and step == "MAIL":
                raise _StaleConnection() from None
            reason = f"connection to {self.relay.name} lost at {step}: {error}"
            raise TemporaryDeliveryError(-1, reason) from None
        except smtplib.SMTPResponseException as error:
            self._abort()
            raise _delivery_error(error.smtp_code, error.smtp_error) from None
        except (smtplib.SMTPException, OSError) as error:
            self._abort()
            step = max(step, self._step, key=_STEPS.index)
            if reused and step == "MAIL" and not isinstance(error, smtplib.SMTPException):
                raise _StaleConnection() from None  # e.g. a broken pipe on an idle connection
            raise TemporaryDeliveryError(-1, f"{self.relay.name} at {step}: {error}") from None
        if code != 250:  # pragma: no cover - smtplib raises SMTPDataError for these
            self._abort()
            raise _delivery_error(code, reply)
        self._sent_on_connection += 1
        return f"{code} {_reply_text(reply)}"

    def _pipelined(
        self,
        smtp: smtplib.SMTP,
        message: bytes,
        before_end: BeforeEnd,
        then: Envelope | None,
        while_waiting: WhileWaiting,
    ) -> tuple[int, bytes]:
        """The replies to MAIL, RCPT and DATA, sent in one write (RFC 2920), then the content.

        Messages are CRLF throughout, as mail/message.py and the email package's SMTP policy
        build them (``Transport.send`` asks for that), so only the dot-stuffing is left to do:
        one pass in C instead of smtplib's two regexes over 20 KB.
        """
        mail_code, mail_reply = smtp.getreply()
        rcpt_code, rcpt_reply = smtp.getreply()
        data_code, data_reply = smtp.getreply()
        if data_code == 354 and (mail_code != 250 or rcpt_code not in (250, 251)):
            # A relay that takes DATA after refusing the envelope gets an empty message
            # ended at once; nothing is delivered without a recipient.
            smtp.send(b".\r\n")
            smtp.getreply()
        if mail_code != 250:
            self._reset_or_abort(smtp)
            raise _delivery_error(mail_code, mail_reply)
        if rcpt_code not in (250, 251):
            self._reset_or_abort(smtp)
            raise _delivery_error(rcpt_code, rcpt_reply)
        if data_code != 354:
            self._reset_or_abort(smtp)
            raise _delivery_error(data_code, data_reply)
        ahead = b""
        if then is not None:
            try:
                ahead = _envelope(*then, self._mail_options(smtp, *then))
            except PermanentDeliveryError:
                then = None  # it fails on its own turn, with nothing sent ahead
        return self._content(smtp, message, before_end, ahead, while_waiting, then)

    def _content(
        self,
        smtp: smtplib.SMTP,
        message: bytes,
        before_end: BeforeEnd,
        ahead: bytes = b"",
        while_waiting: WhileWaiting = None,
        then: Envelope | None = None,
    ) -> tuple[int, bytes]:
        """After the relay's 354: the dot-stuffed content, the caller's work while the relay
        reads it, the hook, then the end (with the next envelope ``ahead``, when
        pipelining) and the relay's reply."""
        stuffed = message.replace(b"\r\n.", b"\r\n..")
        if stuffed.startswith(b"."):
            stuffed = b"." + stuffed
        smtp.send(stuffed)
        if while_waiting is not None:
            while_waiting()
        if before_end is not None:
            try:
                before_end()
            except BaseException:
                self._abort()  # mid-DATA: only dropping the connection cancels the message
                raise
        self._step = "DATA"  # from here a lost connection may have delivered the message
        smtp.send(b".\r\n" + ahead)
        self.pending = then
        code, reply = smtp.getreply()
        if code != 250:
            self._abort_unless_clean(smtp, code)
            raise _delivery_error(code, reply)
        return code, reply

    def _abort_unless_clean(self, smtp: smtplib.SMTP, code: int) -> None:
        """After a refused message the session is ready for the next one, unless the relay
        is closing it (421) or answered nonsense."""
        if code == 421 or code < 400:
            self._abort()

    def _mail_options(self, smtp: smtplib.SMTP, sender: str, recipient: str) -> list[str]:
        if (sender + recipient).isascii():
            return []
        if smtp.has_extn("smtputf8"):
            return ["SMTPUTF8", "BODY=8BITMIME"]
        # 5.6.7 (RFC 6531): the relay's limit, not a bad address, so never a hard bounce.
        raise PermanentDeliveryError(
            553, f"5.6.7 {self.relay.name} cannot take non-ASCII addresses (no SMTPUTF8)"
        )

    def _reset_or_abort(self, smtp: smtplib.SMTP) -> None:
        try:
            code, _ = smtp.rset()
        except (smtplib.SMTPException, OSError):
            code = -1
        if code != 250:
            self._abort()

    def __enter__(self) -> SMTPTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_STEPS = ("MAIL", "RCPT", "DATA")


def _envelope(sender: str, recipient: str, options: list[str]) -> bytes:
    """MAIL, RCPT and DATA as one pipelined group."""
    mail = f"MAIL FROM:<{sender}>" + "".join(" " + option for option in options)
    return f"{mail}\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode()


def _crlf_lines(message: bytes) -> bytes:
    """Every line end as CRLF (SMTP's), the last line ended too."""
    text = re.sub(rb"\r\n|\r|\n", b"\r\n", message)
    return text if text.endswith(b"\r\n") else text + b"\r\n"


class _StaleConnection(Exception):
    """A reused connection was closed by the relay before it accepted anything."""


class MaildirTransport:
    """Writes each message into a Maildir (the outbox), like a local delivery agent."""

    #: a folder has no envelopes to send ahead
    pending: Envelope | None = None

    def __init__(self, path: str) -> None:
        self.path = path
        self._maildir: mailbox.Maildir | None = None

    def send(
        self,
        sender: str,
        recipient: str,
        message: bytes,
        before_end: BeforeEnd = None,
        *,
        then: Envelope | None = None,
        while_waiting: WhileWaiting = None,
    ) -> str:
        """Store the message with ``Return-Path`` and ``Delivered-To``; return its key
        (``then`` and ``while_waiting`` have nothing to overlap here)."""
        if before_end is not None:
            before_end()
        if self._maildir is None:
            # mailbox creates a missing folder but not the sub-folders of an existing empty one.
            for sub in ("tmp", "new", "cur"):
                Path(self.path, sub).mkdir(parents=True, exist_ok=True)
            self._maildir = mailbox.Maildir(self.path, factory=None, create=True)
        envelope = (
            f"Return-Path: <{_one_line(sender)}>\r\nDelivered-To: {_one_line(recipient)}\r\n"
        ).encode()
        try:
            key = self._maildir.add(envelope + message)
        except OSError as error:
            raise RelayUnavailable(-1, f"cannot write to {self.path}: {error}") from None
        return f"250 2.0.0 Ok: stored as {key}"

    def close(self) -> None:
        self._maildir = None


def _one_line(value: str) -> str:
    return "".join(ch for ch in value if ch not in "\r\n\x00").strip()
