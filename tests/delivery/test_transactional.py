"""Transactional mail: POST /api/v1/tx sends one templated message to one address, through
the same relays as issues, on a queue of its own that bulk sends never hold up."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert, select

from newsletter import tasks
from newsletter.audience.models import ConsentSource, Subscriber, Subscription, SubscriptionStatus
from newsletter.content.models import Template, TemplateKind
from newsletter.delivery import transactional
from newsletter.delivery.send import dispatcher
from newsletter.delivery.transactional import TransactionalMessage
from newsletter.extensions import db
from tests.delivery.helpers import FaultySMTPServer, make_sendable_issue
from tests.factories import make_list
from tests.helpers import free_port, join_queue
from tests.smtp import CapturedMessage, CapturingHandler, CapturingSMTPServer

API = "/api/v1"
READER = "reader@example.net"

MJML = """<mjml><mj-body><mj-section><mj-column>
<mj-text>Hello {{ subscriber.name }}, your code is <b>{{ data.code }}</b>.</mj-text>
</mj-column></mj-section></mj-body></mjml>
"""
TEXT = "Hello {{ subscriber.name }},\n\nyour code is {{ data.code }}.\n"


@pytest.fixture
def headers(app: Flask) -> dict[str, str]:
    from newsletter.auth.services import create_api_token, create_user

    create_user("robot@example.org", "a long enough password 123")
    return {"Authorization": f"Bearer {create_api_token('robot@example.org')}"}


@pytest.fixture
def template(app: Flask) -> str:
    """A transactional template ("Login code") that uses ``data.code``."""
    db.session.add(Template(name="Login code", mjml=MJML, text=TEXT,
                            kind=TemplateKind.TRANSACTIONAL))
    db.session.commit()
    return "Login code"


def post_tx(client: FlaskClient, headers: dict[str, str], **body: Any) -> Any:
    return client.post(f"{API}/tx", json=body, headers=headers)


def get_tx(client: FlaskClient, headers: dict[str, str], tx_id: int) -> dict[str, Any]:
    db.session.remove()
    response = client.get(f"{API}/tx/{tx_id}", headers=headers)
    assert response.status_code == 200
    body: dict[str, Any] = response.get_json()
    return body


def a_code(client: FlaskClient, headers: dict[str, str], template: str, **extra: Any) -> int:
    """POST one login-code message to READER; its id."""
    body = {"to": READER, "template": template, "subject": "Your code",
            "data": {"code": "428-113"}, **extra}
    response = post_tx(client, headers, **body)
    assert response.status_code == 202, response.get_json()
    return int(response.get_json()["id"])


# --- the message --------------------------------------------------------------------------


def test_the_message_arrives_with_subject_body_and_recipient(
    client: FlaskClient, headers: dict[str, str], template: str,
    mailbox: CapturingSMTPServer, run_jobs: Callable[[], None],
) -> None:
    response = post_tx(
        client, headers, to=READER, name="Ada Lovelace", template=template,
        subject="Your code for {{ data.site }}", data={"code": "428-113", "site": "News"},
    )

    assert response.status_code == 202
    answer = response.get_json()
    assert answer["status"] == "queued"
    assert response.headers["Location"].endswith(f"/api/v1/tx/{answer['id']}")
    run_jobs()

    [received] = mailbox.to(READER)
    assert received.recipients == [READER]
    assert received.mail_from == "news@example.org"
    message = received.message
    assert message["Subject"] == "Your code for News"
    assert message["To"] == f"Ada Lovelace <{READER}>"
    assert message["From"] == "Example News <news@example.org>"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert "Hello Ada Lovelace,\n\nyour code is 428-113." in text.get_content().replace("\r", "")
    assert "your code is <b>428-113</b>" in html.get_content()
    status = get_tx(client, headers, answer["id"])
    assert status["status"] == "sent"
    assert status["attempts"] == 1
    assert status["last_reply"].startswith("250")
    assert message["Message-ID"] == f"<{status['message_id']}>"
    assert status["sent_at"] is not None


def test_headers_of_one_to_one_mail_no_list_headers(
    client: FlaskClient, headers: dict[str, str], template: str,
    mailbox: CapturingSMTPServer, run_jobs: Callable[[], None],
) -> None:
    a_code(client, headers, template)
    run_jobs()

    message = mailbox.to(READER)[0].message
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Date"] is not None
    assert message["Message-ID"].endswith("@example.org>")
    # Not list mail: nothing to unsubscribe from, and not marked as bulk.
    for header in ("List-Unsubscribe", "List-Unsubscribe-Post", "List-Id", "Precedence"):
        assert message[header] is None, header


def test_an_idn_domain_goes_out_in_punycode(
    client: FlaskClient, headers: dict[str, str], template: str,
    mailbox: CapturingSMTPServer, run_jobs: Callable[[], None],
) -> None:
    tx_id = a_code(client, headers, template, to="leser@bücher.example")
    run_jobs()

    [received] = mailbox.messages
    assert received.recipients == ["leser@xn--bcher-kva.example"]
    assert received.message["To"] == "leser@xn--bcher-kva.example"
    assert get_tx(client, headers, tx_id)["to"] == "leser@bücher.example"


def test_data_is_escaped_in_html_and_names_are_encoded(
    client: FlaskClient, headers: dict[str, str], template: str,
    mailbox: CapturingSMTPServer, run_jobs: Callable[[], None],
) -> None:
    post = post_tx(client, headers, to=READER, name="Zoë, \"the\" Ärger", template=template,
                   subject="Dein Code", data={"code": "<script>x</script>"})
    assert post.status_code == 202
    run_jobs()

    message = mailbox.to(READER)[0].message
    assert message["To"].addresses[0].display_name == 'Zoë, "the" Ärger'
    html = message.get_body(("html",))
    assert html is not None
    assert "&lt;script&gt;x&lt;/script&gt;" in html.get_content()
    assert "<script>" not in html.get_content()


@pytest.fixture
def no_relay(app_config: dict[str, Any]) -> None:
    """The embedded default: no SMTP relay, mail goes to the Maildir outbox."""
    app_config["SMTP_URL"] = None


def test_without_a_relay_the_message_goes_to_the_outbox(
    no_relay: None, app: Flask, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None],
    client: FlaskClient, headers: dict[str, str], template: str,
) -> None:
    from newsletter.mail.outbox import list_outbox

    tx_id = a_code(client, headers, template)
    run_jobs()

    [entry] = list_outbox(app.config["OUTBOX_PATH"])
    assert entry.subject == "Your code"
    assert entry.to == READER
    assert mailbox.messages == []
    assert get_tx(client, headers, tx_id)["status"] == "sent"


def test_a_non_ascii_mailbox_gets_its_message(
    no_relay: None, app: Flask, run_jobs: Callable[[], None],
    client: FlaskClient, headers: dict[str, str], template: str,
) -> None:  # fmt: skip
    from newsletter.mail.outbox import list_outbox

    tx_id = a_code(client, headers, template, to="josé@example.com")
    run_jobs()

    [entry] = list_outbox(app.config["OUTBOX_PATH"])
    assert entry.subject == "Your code"
    assert get_tx(client, headers, tx_id)["status"] == "sent"


# --- validation at the edge ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"to": None}, 422, "to"),
        ({"to": "not an address"}, 422, "to"),
        ({"to": "reader@"}, 422, "to"),
        ({"to": 42}, 422, "to"),
        ({"template": None}, 422, "template"),
        ({"template": "No such template"}, 404, "template"),
        ({"template": 99999}, 404, "template"),
        ({"template": 2**70}, 422, "template"),
        ({"template": ["Login code"]}, 422, "template"),
        ({"subject": ""}, 422, "subject"),
        ({"subject": "x" * 301}, 422, "subject"),
        ({"subject": "{{ data.missing }}"}, 422, "template"),
        ({"subject": "a\x00b"}, 422, "subject"),
        ({"data": ["not", "an", "object"]}, 422, "data"),
        ({"data": {"code": "x" * 70_000}}, 422, "data"),
        ({"data": {}}, 422, "template"),  # the template needs data.code
        ({"name": "n" * 201}, 422, "name"),
        ({"cc": "someone@example.org"}, 422, "cc"),
    ],
)
def test_bad_requests_are_refused_with_the_field_and_send_nothing(
    client: FlaskClient, headers: dict[str, str], template: str,
    mailbox: CapturingSMTPServer, run_jobs: Callable[[], None],
    change: dict[str, Any], status: int, field: str,
) -> None:
    body = {"to": READER, "template": template, "subject": "Your code",
            "data": {"code": "1"}, **change}

    response = post_tx(client, headers, **body)

    assert response.status_code == status
    error = response.get_json()["error"]
    assert error["field"] == field
    assert error["message"]
    run_jobs()
    assert mailbox.messages == []
    assert db.session.scalars(select(TransactionalMessage)).all() == []


def test_a_template_for_issues_is_refused_saying_so(
    client: FlaskClient, headers: dict[str, str], app: Flask
) -> None:
    response = post_tx(client, headers, to=READER, template="digest", subject="Hi", data={})

    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["field"] == "template"
    assert "for issues" in error["message"]


def test_not_json_is_refused(client: FlaskClient, headers: dict[str, str]) -> None:
    response = client.post(f"{API}/tx", data="to=x", headers=headers)
    assert response.status_code == 415
    assert "error" in response.get_json()


def test_a_token_is_required(
    client: FlaskClient, headers: dict[str, str], template: str,
    mailbox: CapturingSMTPServer, run_jobs: Callable[[], None],
) -> None:
    body = {"to": READER, "template": template, "subject": "Hi", "data": {"code": "1"}}
    tx_id = a_code(client, headers, template)

    assert client.post(f"{API}/tx", json=body).status_code == 401
    wrong = {"Authorization": "Bearer not-a-token"}
    assert client.post(f"{API}/tx", json=body, headers=wrong).status_code == 401
    assert client.get(f"{API}/tx/{tx_id}").status_code == 401
    run_jobs()
    assert len(mailbox.messages) == 1  # only the authenticated one


def test_an_unknown_id_is_404(client: FlaskClient, headers: dict[str, str]) -> None:
    response = client.get(f"{API}/tx/12345", headers=headers)
    assert response.status_code == 404
    assert response.get_json()["error"]["message"]


# --- outcomes -----------------------------------------------------------------------------


@pytest.fixture
def via_faulty(app_config: dict[str, Any], faulty_smtp: FaultySMTPServer) -> FaultySMTPServer:
    """The faulty server as the app's relay, quick retries (ask for it before ``app``)."""
    app_config.update(SMTP_URL=faulty_smtp.url, RETRY_BACKOFF_SECONDS=0.01, MAX_ATTEMPTS=3)
    return faulty_smtp


def test_a_4xx_is_retried_and_then_sent(
    via_faulty: FaultySMTPServer, client: FlaskClient, headers: dict[str, str], template: str,
    run_jobs: Callable[[], None],
) -> None:
    via_faulty.handler.flaky[READER] = 1  # one 451, then accepted

    tx_id = a_code(client, headers, template)
    run_jobs()

    assert len(via_faulty.to(READER)) == 1
    status = get_tx(client, headers, tx_id)
    assert status["status"] == "sent"
    assert status["attempts"] == 2
    assert status["last_reply"].startswith("250")


def test_a_4xx_every_time_fails_after_the_last_attempt_with_the_reply(
    via_faulty: FaultySMTPServer, client: FlaskClient, headers: dict[str, str], template: str,
    run_jobs: Callable[[], None],
) -> None:
    via_faulty.handler.flaky[READER] = 100

    tx_id = a_code(client, headers, template)
    run_jobs()

    assert via_faulty.to(READER) == []
    status = get_tx(client, headers, tx_id)
    assert status["status"] == "failed"
    assert status["attempts"] == 3
    assert "451 4.3.2 please try again later" in status["last_reply"]


def test_a_5xx_fails_at_once_with_the_reply(
    client: FlaskClient, headers: dict[str, str], template: str,
    mailbox: CapturingSMTPServer, run_jobs: Callable[[], None],
) -> None:
    mailbox.handler.refuse[READER] = "550 5.1.1 no such user"

    tx_id = a_code(client, headers, template)
    run_jobs()

    assert mailbox.messages == []
    status = get_tx(client, headers, tx_id)
    assert status["status"] == "failed"
    assert status["attempts"] == 1
    assert "550 5.1.1 no such user" in status["last_reply"]


def test_a_message_is_sent_once_however_often_its_job_runs(
    client: FlaskClient, headers: dict[str, str], template: str,
    mailbox: CapturingSMTPServer, run_jobs: Callable[[], None],
) -> None:
    tx_id = a_code(client, headers, template)
    tasks.send_transactional.send(tx_id)  # a duplicate job, queued before the first ran
    run_jobs()
    tasks.send_transactional.send(tx_id)  # and one after it was recorded sent
    transactional.recover_queued()
    run_jobs()

    assert len(mailbox.to(READER)) == 1
    assert get_tx(client, headers, tx_id)["attempts"] == 1


def test_a_lost_queue_is_rebuilt_from_the_rows(
    app: Flask, client: FlaskClient, headers: dict[str, str], template: str,
    mailbox: CapturingSMTPServer, run_jobs: Callable[[], None],
) -> None:
    tx_id = a_code(client, headers, template)
    app.extensions["dramatiq"].flush_all()  # the broker forgot the job

    assert transactional.recover_queued() == 1
    run_jobs()

    assert len(mailbox.to(READER)) == 1
    assert get_tx(client, headers, tx_id)["status"] == "sent"


def test_the_workers_sweep_requeues_only_what_is_overdue(
    app: Flask, client: FlaskClient, headers: dict[str, str], template: str,
    mailbox: CapturingSMTPServer, run_jobs: Callable[[], None],
) -> None:  # fmt: skip
    from newsletter.delivery.send.stalls import StallWatch

    tx_id = a_code(client, headers, template)
    app.extensions["dramatiq"].flush_all()  # the broker forgot the job

    assert StallWatch(stall_seconds=3600).check() == []  # not overdue yet: left alone
    run_jobs()
    assert mailbox.to(READER) == []

    StallWatch(stall_seconds=0).check()  # overdue now
    run_jobs()
    assert len(mailbox.to(READER)) == 1
    assert get_tx(client, headers, tx_id)["status"] == "sent"


def test_the_body_is_not_kept_once_sent(
    client: FlaskClient, headers: dict[str, str], template: str, run_jobs: Callable[[], None],
) -> None:
    tx_id = a_code(client, headers, template)
    assert db.session.get(TransactionalMessage, tx_id).message  # type: ignore[union-attr]
    run_jobs()

    row = db.session.get(TransactionalMessage, tx_id)
    assert row is not None and row.message is None  # a login code has no business in a backup


# --- ahead of bulk ------------------------------------------------------------------------


@dataclass
class GatedHandler(CapturingHandler):
    """Captures mail; once ``hold_after`` messages are in, every other recipient is held at
    RCPT until ``vip`` has been delivered (or for ``limit`` seconds at most). So bulk sending is
    stuck mid-way, worker threads busy and batches queued, until the transactional message
    arrives: if it had to wait behind the bulk, it would come last instead."""

    vip: str = ""
    hold_after: int = 0
    limit: float = 10.0
    holding: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if address.lower() != self.vip and len(self.messages) >= self.hold_after:
            self.holding.set()
            loop = asyncio.get_running_loop()
            if not await loop.run_in_executor(None, self.released.wait, self.limit):
                self.released.set()  # the vip is not coming: let the bulk finish first
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        reply = await super().handle_DATA(server, session, envelope)
        if self.vip in (r.lower() for r in envelope.rcpt_tos):
            self.released.set()
        return reply


BULK = 2000
HOLD_AFTER = 50


@pytest.fixture
def gated_smtp(app_config: dict[str, Any]) -> Iterator[GatedHandler]:
    """The gated server as the app's relay (ask for it before ``app``)."""
    handler = GatedHandler(vip=READER, hold_after=HOLD_AFTER)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    app_config.update(SMTP_URL=f"smtp://127.0.0.1:{port}", BATCH_SIZE=100, WORKER_THREADS=2)
    yield handler
    handler.released.set()
    controller.stop()


def make_big_list(size: int) -> Any:
    """A list with ``size`` confirmed subscribers, written in two bulk INSERTs."""
    news = make_list("news")
    db.session.execute(
        insert(Subscriber),
        [{"email": f"bulk{n}@example.com", "name": f"Bulk {n}"} for n in range(size)],
    )
    ids = db.session.scalars(select(Subscriber.id)).all()
    db.session.execute(
        insert(Subscription),
        [{"subscriber_id": i, "list_id": news.id, "status": SubscriptionStatus.CONFIRMED,
          "consent_source": ConsentSource.ADMIN} for i in ids],
    )
    db.session.commit()
    return news


def test_a_transactional_message_overtakes_a_bulk_send_in_progress(
    gated_smtp: GatedHandler, app: Flask, client: FlaskClient, headers: dict[str, str],
    template: str,
) -> None:
    from newsletter.broker import QUEUES, start_worker_threads

    issue_id = int(make_sendable_issue(make_big_list(BULK)).id)
    broker = app.extensions["dramatiq"]
    workers = start_worker_threads(app, threads=2)
    try:
        dispatcher.request_send(issue_id)
        # The bulk is under way and stuck: its threads are busy, most batches still queued.
        assert gated_smtp.holding.wait(30), "the bulk send never got going"
        tx_id = a_code(client, headers, template)
        for _ in range(5):
            for queue in QUEUES:
                join_queue(broker, queue)
            workers.join()
    finally:
        workers.stop()

    received: list[CapturedMessage] = gated_smtp.messages
    order = [m.recipients[0] for m in received]
    assert len(order) == BULK + 1
    position = order.index(READER)
    # It came while the bulk was held (a couple of messages may be in flight at the hold),
    # not after the bulk: nearly all of the bulk arrived after it.
    assert position <= HOLD_AFTER + 4, f"the transactional message came {position}th"
    assert BULK - position >= BULK - HOLD_AFTER - 4
    assert get_tx(client, headers, tx_id)["status"] == "sent"
    assert dispatcher.progress(issue_id)["status"] == "sent"
