"""Where messages go: SMTP relays (lazily connected, one connection for many messages) or
the Maildir outbox.

A transport is one connection, used by one thread at a time, and carries one message at a
time in three steps: ``begin`` (the envelope: MAIL, RCPT and DATA, up to the relay's 354),
``write`` (the content) and ``finish`` (its end, the line with a single dot, which lets the
relay accept it; with PIPELINING the next message's envelope goes out in the same write).
Nothing can be delivered before ``finish``: whatever the caller does between ``write`` and
``finish`` overlaps the relay's reading of the content, and a caller that cannot go on there
calls ``abort``, since dropping the connection is the only way to cancel a message past DATA.

SMTP errors are never swallowed: each becomes a ``TemporaryDeliveryError`` (4xx, lost
connection: try later), a ``RelayUnavailable`` (the relay's trouble: another relay may take
the message) or a ``PermanentDeliveryError`` (5xx for this recipient or message), and on any
error that leaves the session in doubt the connection is closed first, so the next message
starts on a fresh one.

Only ``newsletter.delivery.outbound`` opens transports (``transport_for``): every message
goes through it, for the relay choice, the rate limits, DKIM and the connection pool.
"""

from __future__ import annotations

import mailbox
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from newsletter.errors import (
    PermanentDeliveryError,
    RelayUnavailable,
    TemporaryDeliveryError,
)

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
    """One connection to one relay (or the outbox), carrying one message at a time."""

    #: the envelope that went out with the last message's end (``finish``), replies unread
    ahead: Envelope | None

    def begin(self, sender: str, recipient: str) -> None:
        """Open one message: MAIL, RCPT and DATA (in one write with PIPELINING, or none when
        they went out ahead with the last message's end), up to the relay's go-ahead.

        An envelope sent ahead for another message, or a message left open, is cancelled
        first (the connection is dropped).

        :raises TemporaryDeliveryError: a 4xx, or the connection failed (retry later).
        :raises RelayUnavailable: the relay cannot be reached or is closing the session.
        :raises PermanentDeliveryError: a 5xx for this recipient (never retried).
        """
        ...

    def write(self, content: bytes) -> None:
        """Send the message's content (CRLF line ends), all in one call, but not its end:
        nothing can be delivered yet.

        :raises TemporaryDeliveryError: the connection failed; nothing was delivered.
        """
        ...

    def finish(self, next_envelope: Envelope | None = None) -> str:
        """End the content and return the relay's reply (``250 2.0.0 Ok``).

        ``next_envelope`` goes out in the same write when the relay offers PIPELINING
        (``ahead`` says whether it went): the next ``begin`` should be for it.

        :raises TemporaryDeliveryError: a 4xx, or the connection was lost (which may have
            delivered the message).
        :raises RelayUnavailable: the relay refused it while closing the session (421).
        :raises PermanentDeliveryError: a 5xx for this message (never retried).
        """
        ...

    def abort(self) -> None:
        """Drop the connection: this cancels a message begun and not finished, and an
        envelope sent ahead. The next ``begin`` connects again."""
        ...

    def send(self, sender: str, recipient: str, message: bytes) -> str:
        """``begin``, ``write`` and ``finish`` one message; return the relay's reply."""
        ...

    def close(self) -> None:
        """Say QUIT (or drop the connection while a message or an envelope is open)."""
        ...


def configured_relays(config: Any) -> list[Relay]:
    """The relays of ``SMTP_URL``, or the Maildir outbox at ``OUTBOX_PATH`` when none is set."""
    relays = parse_relay_urls(config.get("SMTP_URL"))
    return relays or [Relay(scheme="maildir", path=str(config["OUTBOX_PATH"]))]


def transport_for(relay: Relay, config: Any) -> Transport:
    """A new, not yet connected transport to ``relay`` with the app's SMTP settings.

    For ``newsletter.delivery.outbound`` (and tests): mail sent any other way would miss
    DKIM, the rate limits, failover and the record of what was sent.
    """
    if relay.scheme == "maildir":
        return MaildirTransport(relay.path)
    return SMTPTransport(
        relay,
        timeout=float(config.get("SMTP_TIMEOUT") or 30),
        local_hostname=_helo_name(config),
    )


@dataclass
class RelayProbe:
    """What a relay said when ``newsletter doctor`` knocked: its EHLO, STARTTLS and login."""

    ehlo: str | None = None  #: the EHLO reply's first line; None: no answer
    starttls_offered: bool = False
    tls: bool = False  #: the session was encrypted (STARTTLS done, or smtps)
    login: bool | None = None  #: None: no credentials configured (or not tried)
    error: str | None = None  #: what went wrong, at the step where it stopped


def probe_relay(relay: Relay, config: Any) -> RelayProbe:
    """Connect to ``relay``, EHLO, STARTTLS when offered or asked for, log in when the URL has
    credentials, then QUIT; no message is sent. Never raises: ``error`` says what failed."""
    result = RelayProbe()
    # An operator waits for the answer: a relay that says nothing in 10 s is as good as down.
    timeout = min(float(config.get("SMTP_TIMEOUT") or 30), 10.0)
    context = ssl.create_default_context()
    try:
        smtp: smtplib.SMTP
        if relay.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(relay.host, relay.port, local_hostname=_helo_name(config),
                                    timeout=timeout, context=context)  # fmt: skip
            result.tls = True
        else:
            smtp = smtplib.SMTP(relay.host, relay.port, local_hostname=_helo_name(config),
                                timeout=timeout)  # fmt: skip
        with smtp:
            code, reply = smtp.ehlo()
            result.ehlo = f"{code} {_reply_text(reply).splitlines()[0] if reply else ''}".strip()
            result.starttls_offered = bool(smtp.has_extn("starttls"))
            if not result.tls and (result.starttls_offered or relay.starttls):
                smtp.starttls(context=context)
                smtp.ehlo()
                result.tls = True
            if relay.username:
                result.login = _probe_login(smtp, relay, result)
    except (smtplib.SMTPException, OSError, ssl.SSLError) as error:
        result.error = result.error or f"{type(error).__name__}: {error}"
    return result


def _probe_login(smtp: smtplib.SMTP, relay: Relay, result: RelayProbe) -> bool:
    """Log in with one mechanism the relay offers (PLAIN, else LOGIN): smtplib's ``login``
    would try the next after a refusal, and some servers hang up on that."""
    offered = (smtp.esmtp_features.get("auth") or "").upper().split()
    smtp.user, smtp.password = relay.username or "", relay.password or ""
    try:
        if "PLAIN" in offered:
            smtp.auth("PLAIN", smtp.auth_plain)
        elif "LOGIN" in offered:
            smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=False)
        else:
            smtp.login(relay.username or "", relay.password or "")
    except smtplib.SMTPAuthenticationError as error:
        result.error = f"login refused: {error.smtp_code} {_reply_text(error.smtp_error)}"
        return False
    except smtplib.SMTPNotSupportedError:
        result.error = "the relay offers no login (AUTH)"
        return False
    return True


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
    """One SMTP connection to one relay, opened on the first message and reused after."""

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
        self._pipelining = False
        #: between ``begin`` and ``finish``: the relay is reading a message's content
        self._open = False
        self.ahead: Envelope | None = None
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
        # MAIL, RCPT and DATA in one write (RFC 2920), and the next ones with a message's end
        self._pipelining = bool(smtp.does_esmtp and smtp.has_extn("pipelining"))
        return smtp

    def close(self) -> None:
        """Say QUIT, or just drop the connection when the relay is gone or when a message or
        an envelope sent ahead may have reached DATA (QUIT would be taken as content)."""
        if self._open or self.ahead is not None:
            self.abort()
            return
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    def abort(self) -> None:
        """Drop the connection (see ``Transport.abort``)."""
        self._open = False
        self.ahead = None
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.close()
            except OSError:  # pragma: no cover - closing a dead socket
                pass

    # -- one message, in three steps ----------------------------------------------------
    def send(self, sender: str, recipient: str, message: bytes) -> str:
        """``begin``, ``write`` and ``finish`` one message; return the relay's reply."""
        self.begin(sender, recipient)
        self.write(message)
        return self.finish()

    def begin(self, sender: str, recipient: str) -> None:
        """MAIL, RCPT and DATA up to the relay's 354 (see ``Transport.begin``)."""
        if self._open or (self.ahead is not None and self.ahead != (sender, recipient)):
            self.abort()  # the relay may be in DATA for another message: nothing else cancels it
        try:
            self._begin(sender, recipient)
        except _StaleConnection:
            # The relay dropped an idle connection before accepting anything: reconnect once.
            self._begin(sender, recipient)

    def _begin(self, sender: str, recipient: str) -> None:
        if self._smtp is None:
            self._smtp = self._connect()
        smtp = self._smtp
        reused = self._sent_on_connection > 0
        step = "MAIL"
        try:
            options = self._mail_options(smtp, sender, recipient)
            if self._pipelining:
                if self.ahead is None:
                    smtp.send(_envelope(sender, recipient, options))
                self.ahead = None  # sent now or ahead: its replies are read next
                self._envelope_replies(smtp)
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
        except smtplib.SMTPServerDisconnected as error:
            self.abort()
            if reused and step == "MAIL":
                raise _StaleConnection() from None
            reason = f"connection to {self.relay.name} lost at {step}: {error}"
            raise TemporaryDeliveryError(-1, reason) from None
        except smtplib.SMTPResponseException as error:
            self.abort()
            raise _delivery_error(error.smtp_code, error.smtp_error) from None
        except (smtplib.SMTPException, OSError) as error:
            self.abort()
            if reused and step == "MAIL" and not isinstance(error, smtplib.SMTPException):
                raise _StaleConnection() from None  # e.g. a broken pipe on an idle connection
            raise TemporaryDeliveryError(-1, f"{self.relay.name} at {step}: {error}") from None
        self._open = True

    def _envelope_replies(self, smtp: smtplib.SMTP) -> None:
        """Read the replies to a pipelined MAIL, RCPT and DATA (RFC 2920); raise the first
        refusal."""
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

    def write(self, content: bytes) -> None:
        """The dot-stuffed content, without its end (see ``Transport.write``).

        Messages are CRLF throughout, as mail/message.py and the email package's SMTP policy
        build them, so only the dot-stuffing is left to do: one pass in C instead of
        smtplib's two regexes over 20 KB. Content that does not end in CRLF has its line
        ends made CRLF first.
        """
        assert self._open and self._smtp is not None, "write() comes after begin()"
        if not content.endswith(b"\r\n"):
            content = _crlf_lines(content)
        stuffed = content.replace(b"\r\n.", b"\r\n..")
        if stuffed.startswith(b"."):
            stuffed = b"." + stuffed
        try:
            self._smtp.send(stuffed)
        except (smtplib.SMTPException, OSError) as error:
            self.abort()
            reason = f"connection to {self.relay.name} lost in DATA: {error}"
            raise TemporaryDeliveryError(-1, reason) from None

    def finish(self, next_envelope: Envelope | None = None) -> str:
        """The end of the content, with ``next_envelope`` when pipelining, and the relay's
        reply (see ``Transport.finish``)."""
        assert self._open and self._smtp is not None, "finish() comes after write()"
        smtp = self._smtp
        ahead = b""
        if next_envelope is not None and self._pipelining:
            try:
                ahead = _envelope(*next_envelope, self._mail_options(smtp, *next_envelope))
            except PermanentDeliveryError:
                next_envelope = None  # it fails on its own turn, with nothing sent ahead
        else:
            next_envelope = None
        self._open = False
        try:
            smtp.send(b".\r\n" + ahead)
            self.ahead = next_envelope
            code, reply = smtp.getreply()
        except (smtplib.SMTPException, OSError) as error:
            self.abort()
            # From the end on, a lost connection may have delivered the message.
            reason = f"connection to {self.relay.name} lost at DATA: {error}"
            raise TemporaryDeliveryError(-1, reason) from None
        if code != 250:
            # A refused message leaves the session ready for the next one (and an envelope
            # sent ahead valid), unless the relay is closing it (421) or answered nonsense.
            if code == 421 or code < 400:
                self.abort()
            raise _delivery_error(code, reply)
        self._sent_on_connection += 1
        return f"{code} {_reply_text(reply)}"

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
            self.abort()

    def __enter__(self) -> SMTPTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


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

    def __init__(self, path: str) -> None:
        self.path = path
        #: a folder has no envelopes to send ahead
        self.ahead: Envelope | None = None
        self._maildir: mailbox.Maildir | None = None
        self._envelope: Envelope | None = None
        self._content: bytes | None = None

    def send(self, sender: str, recipient: str, message: bytes) -> str:
        """``begin``, ``write`` and ``finish`` one message; return where it was stored."""
        self.begin(sender, recipient)
        self.write(message)
        return self.finish()

    def begin(self, sender: str, recipient: str) -> None:
        """Take the envelope (written as ``Return-Path`` and ``Delivered-To``)."""
        self._envelope, self._content = (sender, recipient), None

    def write(self, content: bytes) -> None:
        """Take the content; nothing is stored before ``finish``."""
        assert self._envelope is not None, "write() comes after begin()"
        self._content = content

    def finish(self, next_envelope: Envelope | None = None) -> str:
        """Store the message; return its key (``next_envelope``: nothing to send ahead)."""
        envelope, content = self._envelope, self._content
        self._envelope = self._content = None
        assert envelope is not None and content is not None, "finish() comes after write()"
        if self._maildir is None:
            # mailbox creates a missing folder but not the sub-folders of an existing empty one.
            for sub in ("tmp", "new", "cur"):
                Path(self.path, sub).mkdir(parents=True, exist_ok=True)
            self._maildir = mailbox.Maildir(self.path, factory=None, create=True)
        sender, recipient = envelope
        headers = (
            f"Return-Path: <{_one_line(sender)}>\r\nDelivered-To: {_one_line(recipient)}\r\n"
        ).encode()
        try:
            key = self._maildir.add(headers + content)
        except OSError as error:
            raise RelayUnavailable(-1, f"cannot write to {self.path}: {error}") from None
        return f"250 2.0.0 Ok: stored as {key}"

    def abort(self) -> None:
        """Forget the message begun (nothing of it was stored)."""
        self._envelope = self._content = None

    def close(self) -> None:
        self.abort()
        self._maildir = None


def forget_maildir_copies(path: str, recipient: str) -> int:
    """Delete the messages in the Maildir at ``path`` delivered to ``recipient`` (an erasure:
    the outbox keeps a copy of every message it took); returns how many went.

    Only each file's first lines are read: ``Delivered-To`` is the second header written.
    """
    wanted = f"Delivered-To: {_one_line(recipient)}".lower().encode()
    removed = 0
    for sub in ("new", "cur", "tmp"):
        folder = Path(path, sub)
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            try:
                with entry.open("rb") as handle:
                    head = handle.read(2048).lower().split(b"\r\n", 2)[:2]
                if wanted in head:
                    entry.unlink()
                    removed += 1
            except OSError:
                continue  # taken or moved meanwhile by whoever reads the outbox
    return removed


def _one_line(value: str) -> str:
    return "".join(ch for ch in value if ch not in "\r\n\x00").strip()
