"""The engine between the batches and the relays: DKIM on bulk mail, pooled connections,
rate limits, failover between relays, the cap per recipient domain, and envelopes sent
ahead."""

from __future__ import annotations

import ast
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import dkim
import pytest
from flask import Flask
from sqlalchemy import select

from newsletter.content.models import Issue
from newsletter.delivery.models import Delivery, DeliveryStatus
from newsletter.delivery.outbound import Outbound, Session, outbound
from newsletter.delivery.send import dispatcher
from newsletter.delivery.send.sender import BatchSender
from newsletter.errors import DomainBusy
from newsletter.extensions import db
from newsletter.mail.dkim import generate_key
from newsletter.mail.message import build_simple_message
from newsletter.models import utcnow
from tests.delivery.helpers import Audience
from tests.helpers import free_port
from tests.smtp import CapturingSMTPServer

SENDER = "news@example.org"


def statuses(issue_id: int) -> Counter[tuple[DeliveryStatus, int]]:
    """How many deliveries of the issue have each (status, attempts)."""
    db.session.commit()
    rows = db.session.execute(
        select(Delivery.status, Delivery.attempts).where(Delivery.issue_id == issue_id)
    ).all()
    return Counter((status, attempts) for status, attempts in rows)


def test_bulk_mail_is_dkim_signed_with_the_from_domains_keys(
    app: Flask, audience: Audience, issue_id: int, mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None], tmp_path: Path,
) -> None:  # fmt: skip
    key_dir = tmp_path / "dkim"
    app.config["DKIM_KEY_DIR"] = str(key_dir)
    rsa_key = generate_key(key_dir, "example.org", selector="rsa1", algorithm="rsa")
    ed_key = generate_key(key_dir, "example.org", selector="ed1", algorithm="ed25519")
    records = {
        f"{key.selector}._domainkey.example.org.".encode(): key.dns_value.encode()
        for key in (rsa_key, ed_key)
    }

    dispatcher.request_send(issue_id)
    run_jobs()

    assert sorted(r for m in mailbox.messages for r in m.recipients) == audience.emails
    for message in mailbox.messages:
        assert message.data.count(b"DKIM-Signature:") == 2
        for index in (0, 1):
            verifier = dkim.DKIM(message.data)
            assert verifier.verify(idx=index, dnsfunc=lambda name, timeout=5: records.get(name))
        signed = dict(dkim.util.parse_tag_value(
            message.message["DKIM-Signature"].encode().replace(b"\r\n", b"")
        ))  # fmt: skip
        assert b"list-unsubscribe" in signed[b"h"]
        assert b"list-unsubscribe-post" in signed[b"h"]


def test_without_a_key_bulk_mail_goes_unsigned(
    app: Flask, audience: Audience, issue_id: int, mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None], tmp_path: Path,
) -> None:  # fmt: skip
    app.config["DKIM_KEY_DIR"] = str(tmp_path / "no-keys-here")
    dispatcher.request_send(issue_id)
    run_jobs()
    assert len(mailbox.messages) == len(audience.emails)
    assert not any(b"DKIM-Signature" in m.data for m in mailbox.messages)


def test_connections_are_pooled_across_batches(
    app: Flask, audience: Audience, issue_id: int, mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
) -> None:  # fmt: skip
    app.config["BATCH_SIZE"] = 1  # one batch per recipient: four batches, two threads
    sessions: list[str] = []
    handler = mailbox.handler
    original = handler.handle_EHLO

    async def count_sessions(server, session, envelope, hostname, responses):  # type: ignore[no-untyped-def]
        sessions.append(hostname)
        return await original(server, session, envelope, hostname, responses)

    handler.handle_EHLO = count_sessions  # type: ignore[method-assign]
    try:
        dispatcher.request_send(issue_id)
        run_jobs()
    finally:
        handler.handle_EHLO = original  # type: ignore[method-assign]

    assert sorted(r for m in mailbox.messages for r in m.recipients) == audience.emails
    assert 1 <= len(sessions) <= 2  # at most one connection per worker thread, reused


def test_a_relay_at_its_hourly_limit_holds_the_rest_without_using_attempts(
    app: Flask, audience: Audience, issue_id: int, mailbox: CapturingSMTPServer,
) -> None:  # fmt: skip
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{mailbox.port}?per_hour=2"
    dispatcher.request_send(issue_id)
    dispatcher.start_issue(issue_id)
    issue = db.session.get(Issue, issue_id)
    assert issue is not None
    ids = sorted(db.session.scalars(select(Delivery.id).where(Delivery.issue_id == issue_id)))

    sender = BatchSender(issue, app.config, list_id_header="<news.example.org>")
    not_before = sender.run(ids[0], ids[-1])

    assert len(mailbox.messages) == 2
    assert statuses(issue_id) == Counter({(DeliveryStatus.SENT, 0): 2,
                                          (DeliveryStatus.PENDING, 0): 2})  # fmt: skip
    assert not_before is not None and not_before > utcnow()
    assert dispatcher.progress(issue_id)["status"] == "sending"


def test_a_dead_relay_fails_over_to_the_live_one(
    app: Flask, audience: Audience, issue_id: int, mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
) -> None:  # fmt: skip
    dead = f"smtp://127.0.0.1:{free_port()}?weight=100"
    app.config["SMTP_URL"] = f"{dead},smtp://127.0.0.1:{mailbox.port}?weight=1"

    dispatcher.request_send(issue_id)
    run_jobs()

    assert sorted(r for m in mailbox.messages for r in m.recipients) == audience.emails
    assert statuses(issue_id) == Counter({(DeliveryStatus.SENT, 0): len(audience.emails)})
    assert dispatcher.progress(issue_id)["status"] == "sent"


def test_a_standby_relay_gets_nothing_while_the_weighted_one_is_up(
    app: Flask, audience: Audience, issue_id: int, mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
) -> None:  # fmt: skip
    standby = CapturingSMTPServer()
    standby.start()
    try:
        app.config["SMTP_URL"] = (
            f"smtp://127.0.0.1:{mailbox.port}?weight=1,smtp://127.0.0.1:{standby.port}?weight=0"
        )
        dispatcher.request_send(issue_id)
        run_jobs()
        standby_messages = standby.messages
    finally:
        standby.stop()

    assert len(mailbox.messages) == len(audience.emails)
    assert standby_messages == []


def test_the_cap_per_recipient_domain_still_delivers_everyone(
    app: Flask, audience: Audience, issue_id: int, mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
) -> None:  # fmt: skip
    app.config["DOMAIN_CONNECTIONS"] = "example.com=1"
    app.config["BATCH_SIZE"] = 2

    dispatcher.request_send(issue_id)
    run_jobs()

    assert sorted(r for m in mailbox.messages for r in m.recipients) == audience.emails
    assert dispatcher.progress(issue_id)["status"] == "sent"


def test_a_pause_takes_effect_between_two_messages(
    app: Flask, audience: Audience, issue_id: int, mailbox: CapturingSMTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from newsletter.delivery.control import actions as control
    from newsletter.delivery.send import sender

    monkeypatch.setattr(sender, "STATUS_EVERY", 0.0)
    dispatcher.request_send(issue_id)
    dispatcher.start_issue(issue_id)
    issue = db.session.get(Issue, issue_id)
    assert issue is not None
    ids = sorted(db.session.scalars(select(Delivery.id).where(Delivery.issue_id == issue_id)))
    handler = mailbox.handler
    original = handler.handle_DATA

    async def pause_after_the_second(server, session, envelope):  # type: ignore[no-untyped-def]
        reply = await original(server, session, envelope)
        if len(handler.messages) == 2:
            with app.app_context():  # the editor presses "pause" from another process
                control.pause(issue_id)
                db.session.remove()
        return reply

    handler.handle_DATA = pause_after_the_second  # type: ignore[method-assign]
    try:
        BatchSender(issue, app.config, list_id_header="<news.example.org>").run(ids[0], ids[-1])
    finally:
        handler.handle_DATA = original  # type: ignore[method-assign]

    assert len(mailbox.messages) == 2
    assert statuses(issue_id) == Counter({(DeliveryStatus.SENT, 0): 2,
                                          (DeliveryStatus.PENDING, 0): 2})  # fmt: skip
    assert dispatcher.progress(issue_id)["status"] == "paused"


@pytest.fixture
def one_at_a_time(app: Flask) -> Outbound:
    """The app's way out, with one transaction at a time to example.com."""
    app.config["DOMAIN_CONNECTIONS"] = "example.com=1"
    return outbound()


def send_then(smtp: Session, recipient: str, following: str | None = None) -> str:
    """One message through the session's three steps, with ``following``'s envelope at its
    end."""
    smtp.begin((SENDER, recipient))
    smtp.write(simple(recipient))
    return smtp.finish(next_envelope=(SENDER, following) if following else None)


def test_a_connection_with_the_next_envelope_out_stays_with_its_session_until_it_is_sent(
    app: Flask, mailbox: CapturingSMTPServer, one_at_a_time: Outbound
) -> None:
    way_out = one_at_a_time

    def from_another_thread(recipient: str) -> BaseException | str:
        outcome: list[BaseException | str] = []

        def send() -> None:
            with app.app_context():
                try:
                    outcome.append(way_out.send(SENDER, recipient, simple(recipient)))
                except DomainBusy as busy:
                    outcome.append(busy)

        thread = threading.Thread(target=send)
        thread.start()
        thread.join(30)
        return outcome[0]

    with way_out.session() as smtp:
        send_then(smtp, "a@example.com", "b@example.com")
        # b@'s transaction is open (its envelope is out): the domain's one slot is taken.
        assert isinstance(from_another_thread("c@example.com"), DomainBusy)
        send_then(smtp, "b@example.com")
    assert str(from_another_thread("c@example.com")).startswith("250")

    assert [m.recipients for m in mailbox.messages] == [
        ["a@example.com"], ["b@example.com"], ["c@example.com"]
    ]


def test_leaving_a_session_with_an_envelope_sent_ahead_delivers_nothing_and_frees_its_domain(
    mailbox: CapturingSMTPServer, one_at_a_time: Outbound
) -> None:
    way_out = one_at_a_time

    with way_out.session() as smtp:
        send_then(smtp, "a@example.com", "b@example.com")
    way_out.send(SENDER, "c@example.com", simple("c@example.com"))

    assert [m.recipients for m in mailbox.messages] == [["a@example.com"], ["c@example.com"]]


def test_a_failure_between_the_content_and_its_end_delivers_nothing(
    mailbox: CapturingSMTPServer, one_at_a_time: Outbound
) -> None:
    way_out = one_at_a_time

    with pytest.raises(RuntimeError), way_out.session() as smtp:
        smtp.begin((SENDER, "a@example.com"))
        smtp.write(simple("a@example.com"))
        raise RuntimeError("the previous outcome could not be recorded")
    # The message was cancelled and its domain slot given back.
    way_out.send(SENDER, "b@example.com", simple("b@example.com"))

    assert [m.recipients for m in mailbox.messages] == [["b@example.com"]]


def test_a_relay_closing_at_the_end_of_a_message_hands_it_to_the_next_relay(
    app: Flask, mailbox: CapturingSMTPServer
) -> None:
    closing = CapturingSMTPServer()
    closing.start()
    try:
        original = closing.handler.handle_DATA

        async def shutting_down(server, session, envelope):  # type: ignore[no-untyped-def]
            return "421 4.3.2 shutting down"

        closing.handler.handle_DATA = shutting_down  # type: ignore[method-assign]
        # The standby (weight 0) takes mail only once the closing relay is out.
        app.config["SMTP_URL"] = (
            f"smtp://127.0.0.1:{closing.port}?weight=1,smtp://127.0.0.1:{mailbox.port}?weight=0"
        )
        reply = outbound().send(SENDER, "a@example.com", simple("a@example.com"))
        closing.handler.handle_DATA = original  # type: ignore[method-assign]
    finally:
        closing.stop()

    assert reply.startswith("250")
    assert [m.recipients for m in mailbox.messages] == [["a@example.com"]]
    assert closing.messages == []


def test_every_message_leaves_through_the_outbound() -> None:
    """No module but the transport speaks SMTP, and none but the outbound opens a transport:
    a message sent any other way would miss DKIM, the limits, failover and the record."""
    package = Path(__file__).resolve().parents[2] / "newsletter"
    opening = {"transport_for", "SMTPTransport", "MaildirTransport"}
    offenders = []
    for path in package.rglob("*.py"):
        module = path.relative_to(package.parent).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), module)):
            if isinstance(node, ast.Import):
                names = {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {node.module or ""} | {alias.name for alias in node.names}
            else:
                continue
            if "smtplib" in names and module != "newsletter/mail/transport.py":
                offenders.append(f"{module} imports smtplib")
            if names & opening and module != "newsletter/delivery/outbound.py":
                offenders.append(f"{module} imports {sorted(names & opening)}")
    assert offenders == []


def simple(recipient: str) -> bytes:
    return build_simple_message(to=recipient, subject="Hi", text="Hi\n", html="<p>Hi</p>",
                                from_address=SENDER)  # fmt: skip
