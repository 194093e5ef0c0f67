"""Internationalised addresses reach the relay in a form it can take, and a relay's limits
are never blamed on the subscriber."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from aiosmtpd.controller import Controller
from flask import Flask

from newsletter.audience.models import SubscriberStatus
from newsletter.delivery.models import DeliveryStatus
from newsletter.delivery.send import dispatcher
from tests.delivery.helpers import deliveries_by_email, make_sendable_issue, subscriber_status
from tests.factories import make_list, make_subscriber
from tests.smtp import CapturingSMTPServer


class PlainRelay(CapturingSMTPServer):
    """A capturing relay that does not offer SMTPUTF8, as many relays do not."""

    def __init__(self) -> None:
        super().__init__()
        self._controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=False
        )


@pytest.fixture
def relay(app: Flask) -> Iterator[PlainRelay]:
    server = PlainRelay()
    server.start()
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{server.port}"
    yield server
    server.stop()


def test_an_idn_domain_goes_out_as_punycode_in_the_envelope(
    app: Flask, relay: PlainRelay, run_jobs: Callable[[], None]
) -> None:
    news = make_list("news")
    make_subscriber("leser@bücher.example", lists=(news,), name="Jörg")
    issue_id = int(make_sendable_issue(news).id)

    dispatcher.request_send(issue_id)
    run_jobs()

    (captured,) = relay.to("leser@xn--bcher-kva.example")
    assert captured.message["To"].addresses[0].domain == "xn--bcher-kva.example"
    assert deliveries_by_email(issue_id)["leser@bücher.example"].status is DeliveryStatus.SENT
    assert subscriber_status("leser@bücher.example") is SubscriberStatus.ACTIVE


def test_an_idn_from_domain_goes_out_as_punycode_in_the_envelope(
    app: Flask, relay: PlainRelay, run_jobs: Callable[[], None]
) -> None:
    app.config["FROM_ADDRESS"] = "Nachrichten <news@exämple.org>"
    news = make_list("news")
    make_subscriber("ada@example.com", lists=(news,), name="Ada")
    issue_id = int(make_sendable_issue(news).id)

    dispatcher.request_send(issue_id)
    run_jobs()

    (captured,) = relay.to("ada@example.com")
    assert captured.mail_from == "news@xn--exmple-cua.org"
    assert captured.message["Message-ID"].endswith("@xn--exmple-cua.org>")
    assert dispatcher.progress(issue_id)["sent"] == 1
    assert subscriber_status("ada@example.com") is SubscriberStatus.ACTIVE


def test_a_relay_without_smtputf8_fails_a_non_ascii_mailbox_but_does_not_blocklist_it(
    app: Flask, relay: PlainRelay, run_jobs: Callable[[], None]
) -> None:
    news = make_list("news")
    make_subscriber("jörg@example.com", lists=(news,), name="Jörg")
    make_subscriber("ada@example.com", lists=(news,), name="Ada")
    issue_id = int(make_sendable_issue(news).id)

    dispatcher.request_send(issue_id)
    run_jobs()

    record = deliveries_by_email(issue_id)["jörg@example.com"]
    assert record.status is DeliveryStatus.FAILED
    assert record.last_reply and "non-ASCII" in record.last_reply
    # The relay's limit, not a bad address: the subscriber stays, for a relay that can.
    assert subscriber_status("jörg@example.com") is SubscriberStatus.ACTIVE
    assert len(relay.to("ada@example.com")) == 1
    assert dispatcher.progress(issue_id)["status"] == "sent"
