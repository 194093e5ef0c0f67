"""The bounce mailbox poller against a real IMAP server over TLS (dovecot on loopback, see
``tests/imap_server.py``) and against a Maildir folder: each message is handed on, and
removed only once the handler returned; a failing one stays for the next poll; the size cap
holds; the workers' sweep queues one poll per interval, and the poll records events through
the policy.
"""

from __future__ import annotations

import mailbox
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from newsletter.audience.models import Subscriber, SubscriberStatus
from newsletter.auth.counters import counters
from newsletter.delivery.bounces import poller
from newsletter.delivery.bounces.models import BounceEvent, BounceKind, BounceSource
from newsletter.delivery.workers import start_sweeper
from newsletter.extensions import db
from tests.factories import make_list, make_subscriber
from tests.imap_server import ImapServer
from tests.tls import make_certificate


def dsn(recipient: str, status: str = "5.1.1", subject: str = "Undelivered Mail") -> bytes:
    """A delivery status notification (RFC 3464) reporting ``recipient`` as failed."""
    return (
        "From: MAILER-DAEMON@mx.example.net\r\n"
        "To: bounces@example.org\r\n"
        f"Subject: {subject}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n"
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        "Action: failed\r\n"
        f"Status: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} no such user\r\n"
        "\r\n--B--\r\n"
    ).encode()


class Taken(list[bytes]):
    """The test's handler: keeps each message; fails for those containing ``fail_on``."""

    def __init__(self, fail_on: bytes | None = None) -> None:
        super().__init__()
        self.fail_on = fail_on

    def __call__(self, raw: bytes, source: BounceSource) -> None:
        assert source is BounceSource.MAILBOX
        if self.fail_on is not None and self.fail_on in raw:
            raise RuntimeError("the policy failed")
        self.append(raw)


@pytest.fixture(autouse=True)
def no_poll_claimed(app: Flask) -> None:
    """Each test starts with no poll claimed (Redis keeps claims across tests)."""
    counters().reset(poller.CLAIM_KEY)


@pytest.fixture(scope="module")
def imap_server() -> Iterator[ImapServer]:
    server = ImapServer().start()
    yield server
    server.stop()


@pytest.fixture
def imap(imap_server: ImapServer) -> ImapServer:
    imap_server.empty("INBOX")
    return imap_server


@pytest.fixture
def app_config(app_config: dict[str, Any], imap_server: ImapServer) -> dict[str, Any]:
    return {
        **app_config,
        "BOUNCE_IMAP_URL": imap_server.url(),
        "BOUNCE_IMAP_CA_FILE": imap_server.ca_file,
    }


# --- IMAP over TLS --------------------------------------------------------------------------


def test_each_message_is_handed_on_then_removed(app: Flask, imap: ImapServer) -> None:
    messages = [dsn("a@example.com"), dsn("b@example.com", "4.2.2"), dsn("c@example.com")]
    imap.deliver(*messages)
    handler = Taken()
    result = poller.poll(handler)
    assert [raw.replace(b"\r\n", b"\n") for raw in handler] == [
        raw.replace(b"\r\n", b"\n") for raw in messages
    ]
    assert (result.taken, result.failed) == (3, 0)
    assert imap.messages() == []


def test_a_message_whose_handler_failed_stays_for_the_next_poll(
    app: Flask, imap: ImapServer
) -> None:
    imap.deliver(dsn("a@example.com"), dsn("poison@example.com"), dsn("c@example.com"))
    result = poller.poll(Taken(fail_on=b"poison@"))
    assert (result.taken, result.failed) == (2, 1)
    left = imap.messages()
    assert len(left) == 1 and b"poison@example.com" in left[0]
    handler = Taken()
    poller.poll(handler)  # the policy works again
    assert len(handler) == 1 and b"poison@example.com" in handler[0]
    assert imap.messages() == []


def test_taken_messages_can_be_moved_to_a_folder_instead(app: Flask, imap: ImapServer) -> None:
    imap.create_folder("Processed")
    imap.empty("Processed")
    app.config["BOUNCE_IMAP_DONE_FOLDER"] = "Processed"
    imap.deliver(dsn("a@example.com"))
    poller.poll(Taken())
    assert imap.messages() == []
    kept = imap.messages("Processed")
    assert len(kept) == 1 and b"a@example.com" in kept[0]


def test_a_message_past_the_size_cap_is_read_only_up_to_it(app: Flask, imap: ImapServer) -> None:
    app.config["BOUNCE_MAX_BYTES"] = 4096
    big = dsn("a@example.com") + b"X" * 10_000 + b"\r\n"
    imap.deliver(big)
    handler = Taken()
    result = poller.poll(handler)
    assert len(handler[0]) == 4096 and result.truncated == 1
    assert b"a@example.com" in handler[0]
    assert imap.messages() == []


def test_at_most_the_per_poll_number_is_taken(app: Flask, imap: ImapServer) -> None:
    app.config["BOUNCE_POLL_MAX_MESSAGES"] = 2
    imap.deliver(*(dsn(f"r{n}@example.com") for n in range(3)))
    assert poller.poll(Taken()).taken == 2
    assert len(imap.messages()) == 1


def test_a_wrong_password_is_a_poll_error_and_nothing_is_touched(
    app: Flask, imap: ImapServer
) -> None:
    app.config["BOUNCE_IMAP_URL"] = imap.url(password="wrong")
    imap.deliver(dsn("a@example.com"))
    with pytest.raises(poller.PollError, match="login was refused"):
        poller.poll(Taken())
    assert len(imap.messages()) == 1


def test_a_server_certificate_we_do_not_trust_is_refused(
    app: Flask, imap: ImapServer, tmp_path: Path
) -> None:
    app.config["BOUNCE_IMAP_CA_FILE"] = str(make_certificate(tmp_path / "other").cert_path)
    with pytest.raises(poller.PollError, match="could not connect"):
        poller.poll(Taken())


def test_only_imaps_urls_are_accepted() -> None:
    with pytest.raises(poller.ConfigError):
        poller.parse_imap_url("imap://u:p@mail.example.org/INBOX")
    where = poller.parse_imap_url("imaps://bounce%40example.org:p%3Ass@mail.example.org/Bounces")
    assert (where.user, where.password, where.port, where.folder) == (
        "bounce@example.org", "p:ss", 993, "Bounces",
    )  # fmt: skip
    assert "p:ss" not in repr(where) and "p:ss" not in where.describe()


# --- end to end: the sweep, the actor, the policy ---------------------------------------------


@pytest.fixture
def readers(app: Flask) -> dict[str, Subscriber]:
    news = make_list("news")
    return {name: make_subscriber(f"{name}@example.com", lists=(news,)) for name in ("ada", "bo")}


def test_the_sweep_queues_one_poll_and_the_poll_records_the_bounces(
    app: Flask, imap: ImapServer, readers: dict[str, Subscriber], run_jobs: Callable[[], None]
) -> None:
    imap.deliver(dsn("ada@example.com"), dsn("stranger@example.net"))
    assert poller.enqueue_due() is True
    assert poller.enqueue_due() is False  # claimed for BOUNCE_POLL_SECONDS: once per interval
    run_jobs()
    rows = db.session.execute(
        select(Subscriber.email, BounceEvent.kind, BounceEvent.source).join(
            Subscriber, Subscriber.id == BounceEvent.subscriber_id
        )
    ).all()
    assert [tuple(row) for row in rows] == [
        ("ada@example.com", BounceKind.HARD, BounceSource.MAILBOX)
    ]
    statuses = dict(db.session.execute(select(Subscriber.email, Subscriber.status)).all())
    assert statuses == {
        "ada@example.com": SubscriberStatus.BLOCKLISTED, "bo@example.com": SubscriberStatus.ACTIVE,
    }  # fmt: skip
    assert imap.messages() == []


def test_the_workers_sweep_polls_the_mailbox(
    app: Flask, maildir: mailbox.Maildir, readers: dict[str, Subscriber],
    run_jobs: Callable[[], None], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    maildir.add(dsn("ada@example.com"))
    queued = threading.Event()
    real_enqueue_due = poller.enqueue_due

    def enqueue_and_tell() -> bool:
        if real_enqueue_due():
            queued.set()
            return True
        return False

    monkeypatch.setattr(poller, "enqueue_due", enqueue_and_tell)
    app.config["SWEEP_SECONDS"] = 0.05
    sweeper = start_sweeper(app, unstarted=False)
    try:
        assert queued.wait(10), "the sweep never queued a poll of the bounce mailbox"
    finally:
        sweeper.stop()
        sweeper.join(5)
    run_jobs()
    assert db.session.scalars(select(BounceEvent.kind)).all() == [BounceKind.HARD]
    assert list(maildir.iterkeys()) == []


def test_nothing_is_queued_without_a_mailbox(app: Flask) -> None:
    app.config["BOUNCE_IMAP_URL"] = None
    assert poller.enqueue_due() is False


# --- Maildir --------------------------------------------------------------------------------


@pytest.fixture
def maildir(app: Flask, tmp_path: Path) -> mailbox.Maildir:
    folder = mailbox.Maildir(tmp_path / "Maildir", create=True)
    app.config.update(BOUNCE_IMAP_URL=None, BOUNCE_MAILDIR=str(tmp_path / "Maildir"))
    return folder


def test_maildir_messages_in_new_and_cur_are_handed_on_then_removed(
    app: Flask, maildir: mailbox.Maildir
) -> None:
    maildir.add(dsn("a@example.com"))
    seen = mailbox.MaildirMessage(dsn("b@example.com"))
    seen.set_subdir("cur")
    maildir.add(seen)
    handler = Taken()
    assert poller.poll(handler).taken == 2
    assert sorted(b"a@example.com" in raw for raw in handler) == [False, True]
    assert list(maildir.iterkeys()) == []


def test_a_maildir_message_whose_handler_failed_stays(app: Flask, maildir: mailbox.Maildir) -> None:
    maildir.add(dsn("poison@example.com"))
    maildir.add(dsn("a@example.com"))
    result = poller.poll(Taken(fail_on=b"poison@"))
    assert (result.taken, result.failed) == (1, 1)
    left = [maildir.get_bytes(key) for key in maildir.iterkeys()]
    assert len(left) == 1 and b"poison@example.com" in left[0]


def test_a_maildir_poll_records_the_bounces_through_the_policy(
    app: Flask, maildir: mailbox.Maildir, readers: dict[str, Subscriber]
) -> None:
    maildir.add(dsn("bo@example.com", "4.2.2"))
    assert poller.poll().taken == 1
    event = db.session.scalars(select(BounceEvent)).one()
    assert (event.kind, event.source) == (BounceKind.SOFT, BounceSource.MAILBOX)
    assert list(maildir.iterkeys()) == []
