"""The intakes of whole messages: ``newsletter bounces import`` (.eml files, Maildir folders)
and ``newsletter bounces serve`` (LMTP on loopback, spoken to by smtplib's LMTP client); and
the issue's end-to-end check: bounces answering an issue's return paths stop the next one."""

from __future__ import annotations

import asyncio
import mailbox as maildir_lib
import smtplib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from newsletter.audience.models import Subscriber, SubscriberStatus, SubscriptionStatus
from newsletter.delivery.bounces import intake, policy
from newsletter.delivery.bounces.models import BounceKind, BounceSource
from newsletter.delivery.send import dispatcher
from newsletter.extensions import db
from tests.delivery.bounce_samples import arf, dsn, unreadable
from tests.delivery.helpers import Audience, deliveries_by_email, make_sendable_issue
from tests.factories import make_list, make_subscriber
from tests.smtp import CapturedMessage, CapturingSMTPServer


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, "BOUNCE_ADDRESS": "bounces@example.org"}


def status_of(email: str) -> Subscriber:
    db.session.commit()
    db.session.expire_all()
    return db.session.scalars(select(Subscriber).where(Subscriber.email == email)).one()


@contextmanager
def lmtp_server(app: Flask, protocol: str = "lmtp") -> Iterator[int]:
    """``bounces serve`` on a free loopback port, in a thread of its own; yields the port."""
    loop = asyncio.new_event_loop()
    bound: list[int] = []
    ready = threading.Event()

    def note(port: int) -> None:
        bound.append(port)
        ready.set()

    task = loop.create_task(intake.serve(app, "127.0.0.1", 0, protocol=protocol, ready=note))

    def run() -> None:
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            pass  # stopped at the end of the test

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10), "the LMTP server did not start"
    try:
        yield bound[0]
    finally:
        loop.call_soon_threadsafe(task.cancel)
        thread.join(10)
        loop.close()


# --- import -------------------------------------------------------------------------------


def test_import_prints_one_line_per_message_of_files_and_maildirs(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    make_subscriber("reader@example.net", lists=(make_list("news"),))
    hard = tmp_path / "hard.eml"
    hard.write_bytes(dsn("reader@example.net"))
    box = maildir_lib.Maildir(tmp_path / "Maildir", create=True)
    delayed_key = box.add(dsn("reader@example.net", action="delayed", status="4.4.1",
                              diagnostic="smtp; 451 4.4.1 try later"))  # fmt: skip
    unread_key = box.add(unreadable("Re: This week"))
    unknown_key = box.add(dsn("nobody@example.net"))

    result = runner.invoke(args=["bounces", "import", str(hard), str(tmp_path / "Maildir")])

    assert result.exit_code == 0, result.output
    [kept] = policy.unread()
    folder = tmp_path / "Maildir"
    expected = {
        f"{hard} kind=hard recipient=reader@example.net",
        f"{folder}/{delayed_key} kind=ignored recipient=-",
        f"{folder}/{unread_key} kept for review (unread #{kept.id}) kind=ignored recipient=-",
        f"{folder}/{unknown_key} kind=hard recipient=nobody@example.net",
    }
    assert set(result.output.splitlines()) == expected
    assert result.output.splitlines()[0] == f"{hard} kind=hard recipient=reader@example.net"
    assert status_of("reader@example.net").status is SubscriberStatus.BLOCKLISTED
    [event] = policy.events_of(status_of("reader@example.net").id)
    assert event.source is BounceSource.IMPORT
    assert kept.source is BounceSource.IMPORT and kept.subject == "Re: This week"


def test_import_refuses_a_path_that_does_not_exist(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    result = runner.invoke(args=["bounces", "import", str(tmp_path / "missing.eml")])
    assert result.exit_code != 0
    assert "does not exist" in result.output


# --- LMTP ---------------------------------------------------------------------------------


def test_serve_takes_bounces_over_lmtp_with_the_rcpt_as_envelope_recipient(app: Flask) -> None:
    news = make_list("news")
    make_subscriber("reader@example.net", lists=(news,))
    issue = make_sendable_issue(news)
    dispatcher.request_send(issue.id)
    dispatcher.start_issue(issue.id)
    delivery = deliveries_by_email(issue.id)["reader@example.net"]
    return_path = policy.returnpath.ReturnPath("bounces@example.org", "test-secret-key")
    rcpt = return_path.for_delivery(delivery.id)

    with lmtp_server(app) as port:
        client = smtplib.LMTP("127.0.0.1", port)
        try:
            # The report names an old forwarding address: the token says who it was.
            refused = client.sendmail("", [rcpt, "postmaster@example.org"],
                                      dsn("old-address@elsewhere.example"))  # fmt: skip
            assert refused == {"postmaster@example.org": (550, b"5.1.1 not a bounce address here")}
            client.sendmail("", ["bounces@example.org"], unreadable())
        finally:
            client.quit()

    assert status_of("reader@example.net").status is SubscriberStatus.BLOCKLISTED
    [event] = policy.events_of(status_of("reader@example.net").id)
    assert (event.kind, event.source, event.issue_id, event.delivery_id) == (
        BounceKind.HARD, BounceSource.LMTP, issue.id, delivery.id
    )
    [kept] = policy.unread()
    assert kept.source is BounceSource.LMTP


def test_serve_speaks_smtp_too(app: Flask) -> None:
    make_subscriber("reader@example.net", lists=(make_list("news"),))
    with lmtp_server(app, protocol="smtp") as port:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail("", ["bounces@example.org"], dsn("reader@example.net"))
    [event] = policy.events_of(status_of("reader@example.net").id)
    assert (event.kind, event.source) == (BounceKind.HARD, BounceSource.LMTP)


def test_serve_refuses_mail_for_other_addresses(app: Flask) -> None:
    with lmtp_server(app) as port:
        client = smtplib.LMTP("127.0.0.1", port)
        try:
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail("", ["someone@example.org"], unreadable())
        finally:
            client.quit()
    assert policy.unread() == []


# --- the issue's end-to-end check -----------------------------------------------------------


def send_and_capture(
    issue_id: int, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> dict[str, CapturedMessage]:
    mailbox.reset()
    dispatcher.request_send(issue_id)
    run_jobs()
    return {m.recipients[0].lower(): m for m in mailbox.messages}


def answer_and_send_again(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path, audience: Audience,
    mailbox: CapturingSMTPServer, run_jobs: Callable[[], None], complaint: Callable[..., None],
) -> None:  # fmt: skip
    """Send an issue; answer ada's message with a hard DSN over LMTP, cy's with a hard DSN
    in a Maildir (imported), di's with a delay, bo's with ``complaint``; the next issue must
    reach only di."""
    first = make_sendable_issue(audience.news, audience.events, subject="First").id
    sent = send_and_capture(first, mailbox, run_jobs)
    assert sorted(sent) == audience.emails
    return_paths = {email: message.mail_from for email, message in sent.items()}
    assert all(path.startswith("bounces+") for path in return_paths.values())

    # ada: the MTA hands the DSN to `bounces serve`, RCPT TO the return path it came back to.
    with lmtp_server(app) as port:
        client = smtplib.LMTP("127.0.0.1", port)
        try:
            client.sendmail("", [return_paths["ada@example.com"]],
                            dsn("ada@example.com", to="bounces@example.org"))  # fmt: skip
        finally:
            client.quit()
    # cy and di: the MTA delivered them to a Maildir (Delivered-To: the return path).
    box = maildir_lib.Maildir(tmp_path / "bounces", create=True)
    box.add(dsn("cy@example.com", delivered_to=return_paths["cy@example.com"]))
    box.add(dsn("di@example.com", to=return_paths["di@example.com"], action="delayed",
                status="4.4.1", diagnostic="smtp; 451 4.4.1 try again"))  # fmt: skip
    # bo: complains
    complaint(return_paths["bo@example.com"])
    result = runner.invoke(args=["bounces", "import", str(tmp_path / "bounces")])
    assert result.exit_code == 0, result.output
    lines = sorted(line.partition(" ")[2] for line in result.output.splitlines())
    assert "kind=hard recipient=cy@example.com" in lines
    assert "kind=ignored recipient=di@example.com" in lines

    assert status_of("ada@example.com").status is SubscriberStatus.BLOCKLISTED
    assert status_of("cy@example.com").status is SubscriberStatus.BLOCKLISTED
    bo = status_of("bo@example.com")
    assert {s.status for s in bo.subscriptions} == {SubscriptionStatus.UNSUBSCRIBED}
    for email in ("ada@example.com", "cy@example.com", "bo@example.com"):
        [event] = policy.events_of(status_of(email).id)
        assert event.issue_id == first
    assert policy.events_of(status_of("di@example.com").id) == []

    second = make_sendable_issue(audience.news, audience.events, subject="Second").id
    reached = send_and_capture(second, mailbox, run_jobs)
    assert sorted(reached) == ["di@example.com"]
    assert set(deliveries_by_email(second)) == {"di@example.com"}


def test_bounces_to_the_return_paths_stop_the_next_issue_arf(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path, audience: Audience,
    mailbox: CapturingSMTPServer, run_jobs: Callable[[], None],
) -> None:  # fmt: skip
    box = maildir_lib.Maildir(tmp_path / "bounces", create=True)

    def arf_report(return_path: str) -> None:
        box.add(arf("bo@example.com", to=return_path))

    answer_and_send_again(app, runner, tmp_path, audience, mailbox, run_jobs, arf_report)


def test_bounces_to_the_return_paths_stop_the_next_issue_api_complaint(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path, audience: Audience,
    mailbox: CapturingSMTPServer, run_jobs: Callable[[], None],
) -> None:  # fmt: skip
    first_issue: list[int] = []

    def api_complaint(return_path: str) -> None:
        # A provider's feedback loop reported through the JSON intake, for the same issue.
        delivery_id = policy.returnpath.delivery_of(return_path, None, "test-secret-key")
        assert delivery_id is not None
        first_issue.append(delivery_id)
        from newsletter.delivery.models import Delivery

        delivery = db.session.get(Delivery, delivery_id)
        assert delivery is not None
        policy.record("bo@example.com", "complaint", "abuse", BounceSource.API,
                      issue_id=delivery.issue_id, delivery_id=delivery_id)  # fmt: skip

    answer_and_send_again(app, runner, tmp_path, audience, mailbox, run_jobs, api_complaint)


def test_serve_says_when_it_cannot_listen(app: Flask, runner: FlaskCliRunner) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(args=["bounces", "serve", "--port", str(port)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    help_text = runner.invoke(args=["bounces", "serve", "--help"]).output
    assert "--host" in help_text and "--port" in help_text and "--protocol" in help_text
