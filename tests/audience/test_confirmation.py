"""The double opt-in mail: through the one door for mail (signed, recorded, retried), once,
with a working link."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dkim
import pytest
from flask import Flask
from sqlalchemy import select

from newsletter import queue, tasks
from newsletter.audience.confirmation import send_confirmation
from newsletter.audience.models import SubscriptionStatus
from newsletter.audience.tokens import read_token
from newsletter.delivery.transactional import (
    TransactionalMessage,
    TransactionalQueueError,
    TransactionalStatus,
)
from newsletter.extensions import db
from newsletter.mail.dkim import generate_key
from tests.factories import make_list, make_subscriber
from tests.smtp import CapturingSMTPServer

ADA = "ada@example.org"


@pytest.fixture
def quick_retries(app_config: dict[str, Any]) -> None:
    """A 4xx is tried again after a hundredth of a second (ask for it before ``app``)."""
    app_config.update(RETRY_BACKOFF_SECONDS=0.01, MAX_ATTEMPTS=3)


def unconfirmed_ada(list_name: str = "Movement News") -> tuple[int, int]:
    """Ada, waiting to confirm her subscription to a double opt-in list: (her id, its id)."""
    news = make_list("news", name=list_name)
    ada = make_subscriber(ADA, lists=(news,), status=SubscriptionStatus.UNCONFIRMED)
    return ada.id, news.id


def ledger() -> list[TransactionalMessage]:
    """Every message recorded in the transactional ledger, as the workers committed it."""
    db.session.remove()
    return list(db.session.scalars(select(TransactionalMessage).order_by(TransactionalMessage.id)))


def test_the_mail_carries_a_link_for_this_subscription(
    app: Flask, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    ada_id, news_id = unconfirmed_ada()
    send_confirmation(ada_id, news_id)
    run_jobs()

    [mail] = mailbox.to(ADA)
    assert mail.mail_from == "news@example.org"
    message = mail.message
    assert "Movement News" in message["Subject"]
    assert message["To"] and ADA in message["To"]
    assert message["Auto-Submitted"]
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    link = re.search(r"https://news\.example\.org/confirm/(\S+)", text)
    assert link, text
    assert link.group(0) in html
    token = read_token("confirm", link.group(1), max_age=60)
    assert (token.subscriber_id, token.list_id) == (ada_id, news_id)


def test_the_mail_is_recorded_in_the_ledger_like_every_other(
    app: Flask, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    ada_id, news_id = unconfirmed_ada()
    send_confirmation(ada_id, news_id)
    run_jobs()

    [row] = ledger()
    assert (row.to_address, row.status, row.attempts) == (ADA, TransactionalStatus.SENT, 1)
    assert row.last_reply and row.last_reply.startswith("250")
    [mail] = mailbox.to(ADA)
    assert mail.message["Message-ID"] == f"<{row.message_id}>"


def test_the_mail_is_dkim_signed_with_the_from_domains_key(
    app: Flask, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None], tmp_path: Path
) -> None:
    app.config["DKIM_KEY_DIR"] = str(tmp_path / "dkim")
    key = generate_key(tmp_path / "dkim", "example.org", selector="conf", algorithm="rsa")
    records = {b"conf._domainkey.example.org.": key.dns_value.encode()}
    ada_id, news_id = unconfirmed_ada()

    send_confirmation(ada_id, news_id)
    run_jobs()

    [mail] = mailbox.to(ADA)
    assert mail.data.count(b"DKIM-Signature:") == 1
    assert dkim.DKIM(mail.data).verify(dnsfunc=lambda name, timeout=5: records.get(name))


def test_a_4xx_is_retried_and_the_mail_delivered_once(
    quick_retries: None, app: Flask, mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
) -> None:  # fmt: skip
    handler = mailbox.handler
    original = handler.handle_RCPT
    tries: list[str] = []

    async def busy_the_first_time(server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        tries.append(address)
        if len(tries) == 1:
            return "451 4.3.2 please try again later"
        return await original(server, session, envelope, address, options)

    handler.handle_RCPT = busy_the_first_time  # type: ignore[method-assign]
    ada_id, news_id = unconfirmed_ada()
    try:
        send_confirmation(ada_id, news_id)
        run_jobs()
    finally:
        handler.handle_RCPT = original  # type: ignore[method-assign]

    assert tries == [ADA, ADA]
    assert len(mailbox.to(ADA)) == 1
    [row] = ledger()
    assert (row.status, row.attempts) == (TransactionalStatus.SENT, 2)


def test_a_duplicated_job_sends_one_mail(
    app: Flask, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    ada_id, news_id = unconfirmed_ada()
    for _ in range(3):  # the same job three times, run by two worker threads at once
        tasks.send_confirmation.send(ada_id, news_id)
    run_jobs()

    assert len(mailbox.to(ADA)) == 1
    assert len(ledger()) == 1


def test_a_job_retried_after_the_broker_refused_the_mail_sends_it_once(
    app: Flask, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    ada_id, news_id = unconfirmed_ada()

    def broker_down(actor_name: str, *args: int, delay_ms: int | None = None) -> None:
        raise ConnectionError("the broker is gone")

    with monkeypatch.context() as patched:
        patched.setattr(queue, "enqueue", broker_down)
        with pytest.raises(TransactionalQueueError):
            send_confirmation(ada_id, news_id)
    send_confirmation(ada_id, news_id)  # the job's retry
    run_jobs()

    assert len(mailbox.to(ADA)) == 1
    failed, sent = TransactionalStatus.FAILED, TransactionalStatus.SENT
    assert [row.status for row in ledger()] == [failed, sent]


def test_nothing_is_sent_once_confirmed_or_unsubscribed(
    app: Flask, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    news = make_list("news")
    ada = make_subscriber(ADA, lists=(news,), status=SubscriptionStatus.CONFIRMED)
    bob = make_subscriber("bob@example.org", lists=(news,),
                          status=SubscriptionStatus.UNSUBSCRIBED)
    send_confirmation(ada.id, news.id)
    send_confirmation(bob.id, news.id)
    send_confirmation(9999, news.id)
    run_jobs()

    assert mailbox.messages == []
    assert ledger() == []


def test_an_internationalised_domain_is_sent_in_punycode(
    app: Flask, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    news = make_list("news")
    leser = make_subscriber("leser@bücher.example", lists=(news,),
                            status=SubscriptionStatus.UNCONFIRMED)
    send_confirmation(leser.id, news.id)
    run_jobs()

    [mail] = mailbox.messages
    assert mail.recipients == ["leser@xn--bcher-kva.example"]
