"""Transports: SMTP against a real server on loopback, and the Maildir outbox."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from newsletter.errors import NotFound, PermanentDeliveryError, TemporaryDeliveryError
from newsletter.mail.message import build_simple_message
from newsletter.mail.outbox import list_outbox, read_outbox
from newsletter.mail.transport import (
    MaildirTransport,
    Relay,
    SMTPTransport,
    Transport,
    configured_relays,
    transport_for,
)
from tests.helpers import free_port
from tests.smtp import CapturingHandler, CapturingSMTPServer

SENDER = "news@example.org"


def message(to: str = "ann@example.com", subject: str = "Hello") -> bytes:
    return build_simple_message(
        to=to, subject=subject, text="Hi there\n", html="<p>Hi</p>", from_address=SENDER
    )


def open_transport(config: dict[str, Any]) -> Transport:
    """A transport to the first configured relay, as the outbound opens them."""
    return transport_for(configured_relays(config)[0], config)


def smtp_config(port: int, **extra: Any) -> dict[str, Any]:
    return {"SMTP_URL": f"smtp://127.0.0.1:{port}", "BASE_URL": "https://news.example.org",
            "OUTBOX_PATH": "/nonexistent", **extra}  # fmt: skip


# -- SMTP ---------------------------------------------------------------------------------


def test_smtp_sends_and_returns_the_relays_reply(mailbox: CapturingSMTPServer) -> None:
    transport = open_transport(smtp_config(mailbox.port))
    try:
        reply = transport.send(SENDER, "ann@example.com", message())
    finally:
        transport.close()

    assert reply == "250 2.0.0 Ok: queued"
    [captured] = mailbox.to("ann@example.com")
    assert captured.mail_from == SENDER
    assert captured.message["Subject"] == "Hello"


def test_smtp_connects_lazily_and_reuses_one_connection(mailbox: CapturingSMTPServer) -> None:
    transport = open_transport(smtp_config(mailbox.port))
    assert isinstance(transport, SMTPTransport)
    assert transport.connections == 0  # nothing opened before the first send

    for number in range(5):
        address = f"reader{number}@example.com"
        transport.send(SENDER, address, message(address))
    transport.close()

    assert transport.connections == 1
    assert len(mailbox.messages) == 5


def test_refused_recipient_is_permanent_and_the_connection_carries_on(
    mailbox: CapturingSMTPServer,
) -> None:
    mailbox.handler.refuse["gone@example.com"] = "550 5.1.1 no such user"
    transport = open_transport(smtp_config(mailbox.port))

    with pytest.raises(PermanentDeliveryError) as caught:
        transport.send(SENDER, "gone@example.com", message("gone@example.com"))
    assert caught.value.code == 550
    assert caught.value.reply == "5.1.1 no such user"

    assert transport.send(SENDER, "ann@example.com", message()).startswith("250")
    transport.close()
    assert [m.recipients for m in mailbox.messages] == [["ann@example.com"]]


def test_4xx_is_temporary(mailbox: CapturingSMTPServer) -> None:
    mailbox.handler.refuse["busy@example.com"] = "451 4.3.0 try again later"
    transport = open_transport(smtp_config(mailbox.port))

    with pytest.raises(TemporaryDeliveryError) as caught:
        transport.send(SENDER, "busy@example.com", message("busy@example.com"))
    transport.close()

    assert (caught.value.code, caught.value.reply) == (451, "4.3.0 try again later")


def test_no_server_is_a_temporary_error() -> None:
    transport = open_transport(smtp_config(free_port()))

    with pytest.raises(TemporaryDeliveryError) as caught:
        transport.send(SENDER, "ann@example.com", message())
    assert "cannot connect" in caught.value.reply


def test_a_dropped_connection_is_reopened_on_the_next_send(mailbox: CapturingSMTPServer) -> None:
    transport = open_transport(smtp_config(mailbox.port))
    assert isinstance(transport, SMTPTransport)
    transport.send(SENDER, "a@example.com", message("a@example.com"))
    assert transport._smtp is not None and transport._smtp.sock is not None
    transport._smtp.sock.shutdown(socket.SHUT_RDWR)  # as if the relay had dropped it

    transport.send(SENDER, "b@example.com", message("b@example.com"))
    transport.close()

    assert transport.connections == 2
    assert sorted(r for m in mailbox.messages for r in m.recipients) == [
        "a@example.com", "b@example.com",
    ]  # fmt: skip


def test_a_message_refused_at_data_is_permanent_and_the_next_one_goes_out(
    mailbox: CapturingSMTPServer,
) -> None:
    transport = open_transport(smtp_config(mailbox.port))
    assert isinstance(transport, SMTPTransport)
    transport.send(SENDER, "a@example.com", message("a@example.com"))

    with pytest.raises(PermanentDeliveryError):  # a 40 MB line: refused once read
        transport.send(SENDER, "a@example.com", b"Subject: x\r\n\r\n" + b"x" * 40_000_000)

    transport.send(SENDER, "b@example.com", message("b@example.com"))
    transport.close()
    assert [m.recipients for m in mailbox.messages] == [["a@example.com"], ["b@example.com"]]


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_message_aborted_between_its_content_and_its_end_is_not_delivered(
    mailbox: CapturingSMTPServer, pipelining: bool
) -> None:
    mailbox.handler.pipelining = pipelining
    transport = open_transport(smtp_config(mailbox.port))
    assert isinstance(transport, SMTPTransport)

    transport.begin(SENDER, "a@example.com")
    transport.write(message("a@example.com"))
    transport.abort()  # e.g. the previous outcome could not be recorded
    assert transport._smtp is None  # mid-DATA: only closing the connection cancels it
    transport.send(SENDER, "b@example.com", message("b@example.com"))
    transport.close()

    assert [m.recipients for m in mailbox.messages] == [["b@example.com"]]
    assert transport.connections == 2


def test_closing_with_a_message_open_delivers_nothing(mailbox: CapturingSMTPServer) -> None:
    transport = open_transport(smtp_config(mailbox.port))
    transport.begin(SENDER, "a@example.com")
    transport.write(message("a@example.com"))
    transport.close()  # not QUIT, which the relay would read as content

    assert mailbox.messages == []


# -- TLS and AUTH -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"user", b"s3cret"
    )
    return AuthResult(success=ok, handled=False)  # handled=False: the server says 535


@pytest.fixture
def tls_server(certificate: tuple[Path, Path], request: pytest.FixtureRequest) -> Iterator[Any]:
    """An SMTP server needing STARTTLS then AUTH (or implicit TLS with ``smtps``)."""
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    implicit = getattr(request, "param", "starttls") == "smtps"
    handler = CapturingHandler()
    port = free_port()
    options: dict[str, Any] = {"authenticator": _authenticator, "auth_required": True}
    if implicit:
        # aiosmtpd only counts STARTTLS as TLS when deciding to offer AUTH.
        options["auth_require_tls"] = False
        controller = Controller(handler, hostname="127.0.0.1", port=port, ssl_context=context,
                                **options)  # fmt: skip
    else:
        controller = Controller(handler, hostname="127.0.0.1", port=port, tls_context=context,
                                require_starttls=True, **options)  # fmt: skip
    controller.start()
    yield handler, port
    controller.stop()


def _client_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def test_starttls_and_auth(tls_server: Any, certificate: tuple[Path, Path]) -> None:
    handler, port = tls_server
    relay = Relay("smtp", "127.0.0.1", port, "user", "s3cret", starttls=True)
    with SMTPTransport(relay, tls_context=_client_context(certificate)) as transport:
        assert transport.send(SENDER, "ann@example.com", message()).startswith("250")
    assert [m.recipients for m in handler.messages] == [["ann@example.com"]]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("tls_server", ["smtps"], indirect=True)
def test_smtps_implicit_tls_and_auth(tls_server: Any, certificate: tuple[Path, Path]) -> None:
    handler, port = tls_server
    relay = Relay("smtps", "127.0.0.1", port, "user", "s3cret")
    with SMTPTransport(relay, tls_context=_client_context(certificate)) as transport:
        assert transport.send(SENDER, "ann@example.com", message()).startswith("250")
    assert len(handler.messages) == 1


def test_wrong_password_is_temporary_not_a_bounce(
    tls_server: Any, certificate: tuple[Path, Path]
) -> None:
    _, port = tls_server
    relay = Relay("smtp", "127.0.0.1", port, "user", "wrong", starttls=True)
    transport = SMTPTransport(relay, tls_context=_client_context(certificate))

    with pytest.raises(TemporaryDeliveryError) as caught:
        transport.send(SENDER, "ann@example.com", message())
    assert caught.value.code == 535


def test_untrusted_certificate_is_refused(tls_server: Any) -> None:
    _, port = tls_server
    relay = Relay("smtp", "127.0.0.1", port, "user", "s3cret", starttls=True)

    with pytest.raises(TemporaryDeliveryError) as caught:
        SMTPTransport(relay).send(SENDER, "ann@example.com", message())
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.reply


def test_the_transport_follows_the_relay_url() -> None:
    transport = open_transport(
        {"SMTP_URL": "smtp://me:p%40ss@mail.example.org:587?starttls=true,smtp://other:25",
         "SMTP_HELO_NAME": "out.example.org"}
    )  # fmt: skip
    assert isinstance(transport, SMTPTransport)
    assert transport.relay == Relay("smtp", "mail.example.org", 587, "me", "p@ss", starttls=True)
    assert transport.local_hostname == "out.example.org"


# -- Maildir outbox -----------------------------------------------------------------------


def test_outbox_is_used_without_smtp_url_and_created_if_missing(tmp_path: Path) -> None:
    outbox = tmp_path / "instance" / "outbox"
    transport = open_transport({"SMTP_URL": None, "OUTBOX_PATH": str(outbox)})
    assert isinstance(transport, MaildirTransport)

    reply = transport.send(SENDER, "ann@example.com", message(subject="First"))
    transport.send(SENDER, "bo@example.com", message("bo@example.com", subject="Second"))
    transport.close()

    assert reply.startswith("250 ")
    assert (outbox / "new").is_dir()
    entries = list_outbox(str(outbox))
    assert {(e.subject, e.to) for e in entries} == {
        ("First", "ann@example.com"), ("Second", "bo@example.com"),
    }  # fmt: skip
    raw = read_outbox(str(outbox), entries[0].key)
    assert raw.startswith(b"Return-Path: <news@example.org>\r\nDelivered-To: ")
    assert entries[0].date.tzinfo is not None
    assert len(list_outbox(str(outbox), limit=1)) == 1


def test_maildir_url_names_the_outbox(tmp_path: Path) -> None:
    transport = open_transport({"SMTP_URL": f"maildir://{tmp_path}/box", "OUTBOX_PATH": "x"})
    transport.send(SENDER, "ann@example.com", message())
    assert [e.to for e in list_outbox(str(tmp_path / "box"))] == ["ann@example.com"]


def test_read_outbox_unknown_or_hostile_key(tmp_path: Path) -> None:
    MaildirTransport(str(tmp_path)).send(SENDER, "ann@example.com", message())

    for key in ("nope", "../../etc/passwd", "new/../cur"):
        with pytest.raises(NotFound):
            read_outbox(str(tmp_path), key)
        with pytest.raises(KeyError):
            read_outbox(str(tmp_path), key)


def test_empty_or_missing_outbox_lists_nothing(tmp_path: Path) -> None:
    assert list_outbox(str(tmp_path / "missing")) == []


# -- PIPELINING (RFC 2920) ------------------------------------------------------------------


def test_pipelined_envelope_is_one_write_and_a_leading_dot_survives(
    mailbox: CapturingSMTPServer,
) -> None:
    transport = open_transport(smtp_config(mailbox.port))
    assert isinstance(transport, SMTPTransport)
    body = b"Subject: dots\r\n\r\n.starts with a dot\r\n..two\r\nplain\r\n.\r\nafter\r\n"
    sent: list[bytes] = []
    transport.send(SENDER, "a@example.com", body)
    assert transport._smtp is not None
    original = transport._smtp.send

    def spy(data: bytes | str) -> None:
        sent.append(data if isinstance(data, bytes) else data.encode())
        original(data)

    transport._smtp.send = spy  # type: ignore[method-assign]
    transport.send(SENDER, "b@example.com", body)
    transport.close()

    assert sent[0] == b"MAIL FROM:<news@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
    assert [m.data.replace(b"\r\n", b"\n") for m in mailbox.messages] == [
        body.replace(b"\r\n", b"\n")
    ] * 2


def test_pipelined_refusals_keep_the_connection(mailbox: CapturingSMTPServer) -> None:
    mailbox.handler.refuse["gone@example.com"] = "550 5.1.1 no such user"
    mailbox.handler.refuse["busy@example.com"] = "451 4.3.0 try again later"
    transport = open_transport(smtp_config(mailbox.port))
    assert isinstance(transport, SMTPTransport)

    with pytest.raises(PermanentDeliveryError) as permanent:
        transport.send(SENDER, "gone@example.com", message("gone@example.com"))
    with pytest.raises(TemporaryDeliveryError) as temporary:
        transport.send(SENDER, "busy@example.com", message("busy@example.com"))
    transport.send(SENDER, "ann@example.com", message())
    transport.close()

    assert (permanent.value.code, permanent.value.reply) == (550, "5.1.1 no such user")
    assert temporary.value.code == 451
    assert transport.connections == 1
    assert [m.recipients for m in mailbox.messages] == [["ann@example.com"]]


def spy_writes(transport: SMTPTransport) -> list[bytes]:
    """Record every write on the transport's (open) connection from now on."""
    assert transport._smtp is not None
    writes: list[bytes] = []
    original = transport._smtp.send

    def spy(data: bytes | str) -> None:
        writes.append(data if isinstance(data, bytes) else data.encode())
        original(data)

    transport._smtp.send = spy  # type: ignore[method-assign]
    return writes


def send_then(
    transport: Transport, recipient: str, following: str | None = None, body: bytes = b""
) -> str:
    """Send one message in its three steps, with ``following``'s envelope at its end."""
    transport.begin(SENDER, recipient)
    transport.write(body or message(recipient))
    return transport.finish(next_envelope=(SENDER, following) if following else None)


def test_the_next_envelope_goes_out_with_the_end_of_a_message(
    mailbox: CapturingSMTPServer,
) -> None:
    transport = open_transport(smtp_config(mailbox.port))
    assert isinstance(transport, SMTPTransport)
    transport.send(SENDER, "a@example.com", message("a@example.com"))
    writes = spy_writes(transport)
    assert transport._smtp is not None and transport._smtp.sock is not None
    nodelay = transport._smtp.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)

    recipients = [f"r{n}@example.com" for n in range(4)]
    for index, address in enumerate(recipients):
        following = recipients[index + 1] if index + 1 < len(recipients) else None
        send_then(transport, address, following)
        assert transport.ahead == ((SENDER, following) if following else None)
    transport.close()

    def envelope(address: str) -> bytes:
        return f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{address}>\r\nDATA\r\n".encode()

    # Only the first envelope goes alone; each message's end carries the next envelope.
    assert writes[0] == envelope("r0@example.com")
    ends = [write for write in writes if write.startswith(b".\r\n")]
    assert ends == [b".\r\n" + envelope(address) for address in recipients[1:]] + [b".\r\n"]
    assert sum(write.startswith(b"MAIL") for write in writes) == 1
    assert writes[-1].lower() == b"quit\r\n"
    assert [m.recipients for m in mailbox.messages] == [["a@example.com"]] + [
        [address] for address in recipients
    ]
    # Each end is a small write right after the content: Nagle's algorithm must not hold it
    # back until the relay's delayed ACK (40 ms a message).
    assert nodelay == 1
    assert [m.message["To"] for m in mailbox.messages[1:]] == recipients
    assert transport.connections == 1


def test_an_envelope_sent_ahead_for_a_message_that_never_comes_delivers_nothing(
    mailbox: CapturingSMTPServer,
) -> None:
    transport = open_transport(smtp_config(mailbox.port))
    assert isinstance(transport, SMTPTransport)

    send_then(transport, "a@example.com", "b@example.com")
    # Another message instead: the relay may be in DATA for b@, so the connection goes.
    send_then(transport, "c@example.com", "d@example.com")
    transport.close()  # with d@'s envelope out: dropped, not QUIT (taken as content)

    assert [m.recipients for m in mailbox.messages] == [["a@example.com"], ["c@example.com"]]
    assert transport.connections == 2
    assert transport.ahead is None


def test_a_refused_message_keeps_the_envelope_sent_ahead(
    mailbox: CapturingSMTPServer,
) -> None:
    mailbox.handler.refuse["gone@example.com"] = "550 5.1.1 no such user"
    transport = open_transport(smtp_config(mailbox.port))
    assert isinstance(transport, SMTPTransport)

    send_then(transport, "a@example.com", "gone@example.com")
    with pytest.raises(PermanentDeliveryError) as refused:
        send_then(transport, "gone@example.com", "b@example.com")
    # Refused at RCPT, before any content: nothing went ahead for b@.
    assert transport.ahead is None
    transport.send(SENDER, "b@example.com", message("b@example.com"))
    transport.close()

    assert refused.value.code == 550
    assert [m.recipients for m in mailbox.messages] == [["a@example.com"], ["b@example.com"]]
    assert transport.connections == 1


def test_the_end_of_a_message_goes_out_only_when_it_is_finished(
    mailbox: CapturingSMTPServer,
) -> None:
    transport = open_transport(smtp_config(mailbox.port))
    assert isinstance(transport, SMTPTransport)
    transport.send(SENDER, "a@example.com", message("a@example.com"))
    writes = spy_writes(transport)

    transport.begin(SENDER, "b@example.com")
    transport.write(message("b@example.com"))
    # The caller's work overlaps the relay's reading here: nothing can be accepted yet.
    before_end = list(writes)
    transport.finish()
    transport.close()

    assert not any(write.startswith(b".\r\n") for write in before_end)
    assert writes[len(before_end)] == b".\r\n"
    assert [m.recipients for m in mailbox.messages] == [["a@example.com"], ["b@example.com"]]


def test_without_pipelining_the_commands_go_one_by_one(mailbox: CapturingSMTPServer) -> None:
    mailbox.handler.pipelining = False
    transport = open_transport(smtp_config(mailbox.port))
    assert isinstance(transport, SMTPTransport)
    transport.send(SENDER, "a@example.com", message("a@example.com"))
    assert transport._smtp is not None and not transport._smtp.has_extn("pipelining")
    transport.send(SENDER, "b@example.com", message("b@example.com"))
    transport.close()
    assert len(mailbox.messages) == 2


def test_postfix_smtp_sink_takes_pipelined_messages() -> None:
    """Against Postfix's smtp-sink, a real PIPELINING server: every message accepted on one
    connection, in two writes each, or one when the next envelope goes ahead."""
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(sink).exists():
        from tests.helpers import require_service

        require_service("smtp-sink", "install Debian's postfix package")
    port = free_port()
    process = subprocess.Popen(
        [sink, "-u", "nobody", f"127.0.0.1:{port}", "10"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_listener(port)
        transport = SMTPTransport(Relay(scheme="smtp", host="127.0.0.1", port=port))
        replies = [transport.send(SENDER, f"r{n}@example.com", message()) for n in range(20)]
        assert transport._smtp is not None and transport._smtp.has_extn("pipelining")
        # …and with each next envelope sent ahead with the end of the message before it
        for n in range(20):
            following = f"s{n + 1}@example.com" if n < 19 else None
            replies.append(send_then(transport, f"s{n}@example.com", following, message()))
        transport.close()
    finally:
        process.terminate()
        process.wait(10)
    assert all(reply.startswith("250") for reply in replies)
    assert transport.connections == 1


def _wait_for_listener(port: int) -> None:
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise AssertionError(f"nothing listens on {port}")
