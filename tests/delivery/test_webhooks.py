"""Outgoing webhooks against a real HTTP server on loopback: every event kind arrives,
signed as Standard Webhooks says (checked by our own HMAC and by the ``standardwebhooks``
package, as a receiver would), retried with backoff, given up after the schedule, never
sent for a rolled-back change, never sent to a private address unless allowed, never
following a redirect."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select
from standardwebhooks.webhooks import Webhook

from newsletter import events
from newsletter.audience import subscriptions
from newsletter.audience.models import ConsentSource, OptIn, Subscriber
from newsletter.audience.tokens import make_token
from newsletter.delivery.send import dispatcher
from newsletter.delivery.webhooks import outbox, service
from newsletter.delivery.webhooks.models import (
    MessageStatus,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
)
from newsletter.errors import ValidationError
from newsletter.extensions import db
from newsletter.models import utcnow
from tests.delivery.helpers import make_sendable_issue
from tests.factories import make_list, make_subscriber
from tests.webhook_server import Received, WebhookReceiver

#: seconds before each retry in these tests: four attempts in all
SCHEDULE = (0.2, 0.4, 0.6)


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {
        **app_config,
        "WEBHOOKS_ALLOW_PRIVATE": True,  # the receiver is on loopback
        "WEBHOOKS_RETRY_SCHEDULE": ",".join(str(s) for s in SCHEDULE),
        "WEBHOOKS_TIMEOUT": 2,
    }


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    yield server
    server.stop()


@dataclass(frozen=True)
class Hook:
    """A registered endpoint, as plain values (rows expire when the workers run)."""

    id: int
    secret: str


def register(
    receiver: WebhookReceiver, path: str = "/hooks", kinds: tuple[str, ...] = events.EVENT_KINDS
) -> Hook:
    endpoint = service.create_endpoint(receiver.url(path), kinds, known=events.EVENT_KINDS)
    return Hook(endpoint.id, endpoint.secret)


def verify_independently(secret: str, request: Received) -> None:
    """The signature checked as the specification describes it, with the stdlib alone."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode()
    expected = base64.b64encode(hmac.new(key, signed + request.body, hashlib.sha256).digest())
    given = [part.split(",", 1)[1] for part in request.headers["webhook-signature"].split()]
    assert any(hmac.compare_digest(expected.decode(), value) for value in given)
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 300


def verify_with_library(secret: str, request: Received) -> Any:
    """The ``standardwebhooks`` package's own check (raises when it fails)."""
    return Webhook(secret).verify(request.body, request.headers)


def log_of(endpoint_id: int) -> list[WebhookMessage]:
    db.session.remove()
    return list(
        db.session.scalars(
            select(WebhookMessage).where(WebhookMessage.endpoint_id == endpoint_id)
            .order_by(WebhookMessage.id)
        )
    )  # fmt: skip


def test_each_event_kind_arrives_signed_with_only_what_is_needed(
    app: Flask, receiver: WebhookReceiver, run_jobs: Callable[[], None]
) -> None:
    endpoint = register(receiver)
    secret = endpoint.secret
    single = make_list("single", optin=OptIn.SINGLE)
    double = make_list("double")
    ada = subscriptions.subscribe("ada@example.org", list_slugs=["single"],
                                  source=ConsentSource.API)  # fmt: skip
    ada_id = ada.id
    subscriptions.subscribe("bo@example.org", list_slugs=["double"], source=ConsentSource.API)
    bo = db.session.scalars(select(Subscriber).where(Subscriber.email == "bo@example.org")).one()
    bo_id = bo.id
    subscriptions.confirm(make_token("confirm", bo_id, double.id))
    subscriptions.unsubscribe(ada_id, single.id)
    # What the bounce handling publishes, through the same door.
    events.publish("subscriber.bounced", {"subscriber_id": bo_id, "email": "bo@example.org"})
    events.publish("subscriber.complained", {"subscriber_id": bo_id, "email": "bo@example.org"})
    db.session.commit()
    issue_id = int(make_sendable_issue(single, double).id)
    dispatcher.request_send(issue_id)
    run_jobs()

    bodies = [request.json() for request in receiver.at("/hooks")]
    kinds = [body["type"] for body in bodies]
    assert sorted(kinds) == sorted([
        "subscriber.subscribed", "subscriber.confirmed",  # ada, single opt-in: both at once
        "subscriber.subscribed",  # bo, awaiting confirmation
        "subscriber.confirmed",  # bo's link
        "subscriber.unsubscribed",  # ada
        "subscriber.bounced", "subscriber.complained", "issue.sent",
    ])  # fmt: skip
    assert set(kinds) == set(events.EVENT_KINDS)
    for request, body in zip(receiver.at("/hooks"), bodies, strict=True):
        verify_independently(secret, request)
        assert verify_with_library(secret, request)["type"] == body["type"]
        assert request.headers["content-type"] == "application/json"
        assert body["timestamp"].endswith("Z")
    by_kind = {body["type"]: body["data"] for body in bodies}
    assert by_kind["subscriber.unsubscribed"] == {
        "subscriber_id": ada_id, "email": "ada@example.org", "list": "single",
    }  # fmt: skip
    assert by_kind["subscriber.confirmed"]["list"] in ("single", "double")
    for kind in ("subscriber.subscribed", "subscriber.confirmed"):
        assert set(by_kind[kind]) == {"subscriber_id", "email", "list"}
    assert by_kind["issue.sent"]["issue_id"] == issue_id
    assert by_kind["issue.sent"]["sent"] == 1  # bo: ada left before the send
    assert "email" not in by_kind["issue.sent"]
    assert all(m.status is MessageStatus.DELIVERED for m in log_of(endpoint.id))


def test_an_endpoint_receives_only_the_kinds_it_chose(
    app: Flask, receiver: WebhookReceiver, run_jobs: Callable[[], None]
) -> None:
    register(receiver, "/issues-only", ("issue.sent",))
    make_list("news", optin=OptIn.SINGLE)
    subscriptions.subscribe("ada@example.org", list_slugs=["news"], source=ConsentSource.API)
    run_jobs()

    assert receiver.received == []
    assert db.session.scalar(select(func.count()).select_from(WebhookMessage)) == 0


def test_failures_are_retried_with_backoff_until_one_succeeds(
    app: Flask, receiver: WebhookReceiver, run_jobs: Callable[[], None]
) -> None:
    receiver.answers["/flaky"] = [(500, {}), (503, {}), (200, {})]
    endpoint = register(receiver, "/flaky")
    events.publish("issue.sent", {"issue_id": 7})
    db.session.commit()
    run_jobs()

    tries = receiver.at("/flaky")
    assert len(tries) == 3
    assert len({request.headers["webhook-id"] for request in tries}) == 1  # one event
    assert len({request.body for request in tries}) == 1  # the same bytes each time
    for request in tries:
        verify_with_library(endpoint.secret, request)
    waits = [later.at - earlier.at for earlier, later in zip(tries, tries[1:], strict=False)]
    assert waits[0] >= SCHEDULE[0] * 0.9 and waits[1] >= SCHEDULE[1] * 0.9
    [message] = log_of(endpoint.id)
    assert message.status is MessageStatus.DELIVERED
    assert message.attempts == 3
    assert [a.status_code for a in message.attempt_log] == [500, 503, 200]
    assert "answered 500" in message.attempt_log[0].error
    assert message.attempt_log[2].error == ""


def test_a_message_is_given_up_after_the_schedule_and_the_log_says_so(
    app: Flask, receiver: WebhookReceiver, run_jobs: Callable[[], None]
) -> None:
    receiver.answers["/down"] = [(500, {})]
    endpoint = register(receiver, "/down")
    events.publish("issue.sent", {"issue_id": 7})
    db.session.commit()
    run_jobs()

    assert len(receiver.at("/down")) == len(SCHEDULE) + 1
    [message] = log_of(endpoint.id)
    assert message.status is MessageStatus.FAILED
    assert message.attempts == service.max_attempts() == 4
    assert message.finished_at is not None and message.next_attempt_at is None
    assert [a.status_code for a in message.attempt_log] == [500] * 4
    assert message.last_error is not None and "answered 500" in message.last_error

    # An admin's retry: one more attempt, now that the endpoint is back.
    receiver.answers["/down"] = [(200, {})]
    service.retry_message(endpoint.id, message.id)
    run_jobs()
    [message] = log_of(endpoint.id)
    assert message.status is MessageStatus.DELIVERED
    assert message.attempts == 5


def test_a_rolled_back_change_sends_nothing(
    app: Flask, receiver: WebhookReceiver, run_jobs: Callable[[], None]
) -> None:
    endpoint = register(receiver)
    news = make_list("news", optin=OptIn.SINGLE)
    ada = make_subscriber("ada@example.org", lists=(news,))
    subscriptions.publish_change(ada, news, subscriptions.SubscriptionStatus.UNSUBSCRIBED)
    assert db.session.info.get(outbox.PENDING_KEY)  # written, waiting for the commit
    db.session.rollback()
    make_list("later")  # a later commit must not send what the rollback dropped
    run_jobs()

    assert receiver.received == []
    assert log_of(endpoint.id) == []


def test_publishing_with_no_endpoint_costs_one_query(app: Flask) -> None:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    make_list("news")
    event.listen(db.engine, "before_cursor_execute", count)
    try:
        events.publish("issue.sent", {"issue_id": 1})
        db.session.commit()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(statements) == 1
    assert statements[0].lstrip().upper().startswith("SELECT")


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/hook", "http://localhost/hook", "http://10.1.2.3/hook",
     "http://169.254.169.254/latest/meta-data", "http://[::1]/hook", "http://[fd00::1]/"],
)  # fmt: skip
def test_a_private_address_is_refused_when_the_setting_is_off(app: Flask, url: str) -> None:
    app.config["WEBHOOKS_ALLOW_PRIVATE"] = False

    with pytest.raises(ValidationError) as refused:
        service.create_endpoint(url, ["issue.sent"], known=events.EVENT_KINDS)
    assert refused.value.field == "url"
    assert "NEWSLETTER_WEBHOOKS_ALLOW_PRIVATE" in refused.value.message
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0


def test_a_name_resolving_to_a_private_address_is_refused_at_delivery(
    app: Flask, receiver: WebhookReceiver, run_jobs: Callable[[], None]
) -> None:
    # Registered while allowed, by a name (checked where the connection is made, on every
    # address it resolves to); then the setting is turned off.
    port = receiver.httpd.server_address[1]
    endpoint_id = service.create_endpoint(
        f"http://localhost:{port}/hooks", ["issue.sent"], known=events.EVENT_KINDS
    ).id
    app.config["WEBHOOKS_ALLOW_PRIVATE"] = False
    events.publish("issue.sent", {"issue_id": 7})
    db.session.commit()
    run_jobs()

    assert receiver.received == []
    [message] = log_of(endpoint_id)
    assert message.status is MessageStatus.FAILED  # at once: it would be refused again
    assert message.attempts == 1
    assert message.attempt_log[0].status_code is None
    assert "NEWSLETTER_WEBHOOKS_ALLOW_PRIVATE" in message.attempt_log[0].error


def test_a_redirect_is_not_followed(
    app: Flask, receiver: WebhookReceiver, run_jobs: Callable[[], None]
) -> None:
    receiver.answers["/moved"] = [(307, {"Location": receiver.url("/elsewhere")})]
    endpoint = register(receiver, "/moved")
    events.publish("issue.sent", {"issue_id": 7})
    db.session.commit()
    run_jobs()

    assert receiver.at("/elsewhere") == []
    assert len(receiver.at("/moved")) == service.max_attempts()  # a failure, retried
    [message] = log_of(endpoint.id)
    assert message.status is MessageStatus.FAILED
    assert message.attempt_log[0].status_code == 307
    assert "not followed" in message.attempt_log[0].error


def test_410_gone_turns_the_endpoint_off(
    app: Flask, receiver: WebhookReceiver, run_jobs: Callable[[], None]
) -> None:
    receiver.answers["/gone"] = [(410, {})]
    endpoint = register(receiver, "/gone")
    events.publish("issue.sent", {"issue_id": 7})
    db.session.commit()
    run_jobs()
    events.publish("issue.sent", {"issue_id": 8})  # nobody listens any more
    db.session.commit()
    run_jobs()

    assert len(receiver.at("/gone")) == 1
    db.session.remove()
    row = db.session.get(WebhookEndpoint, endpoint.id)
    assert row is not None and not row.active
    assert row.disabled_reason == "the endpoint answered 410 Gone"
    assert [m.status for m in log_of(endpoint.id)] == [MessageStatus.FAILED]


def test_an_endpoint_that_does_not_answer_times_out(
    app: Flask, receiver: WebhookReceiver, run_jobs: Callable[[], None]
) -> None:
    app.config["WEBHOOKS_TIMEOUT"] = 0.3
    app.config["WEBHOOKS_RETRY_SCHEDULE"] = ""  # one attempt
    endpoint = register(receiver, "/stall")
    events.publish("issue.sent", {"issue_id": 7})
    db.session.commit()
    run_jobs()

    [message] = log_of(endpoint.id)
    assert message.status is MessageStatus.FAILED
    assert message.attempt_log[0].status_code is None
    assert "no answer within 0.3 seconds" in message.attempt_log[0].error
    assert message.attempt_log[0].duration_ms < 2000


def test_a_rotated_secret_signs_beside_the_old_one_for_a_day(
    app: Flask, receiver: WebhookReceiver, run_jobs: Callable[[], None]
) -> None:
    hook = register(receiver)
    old = hook.secret
    new = service.rotate_secret(hook.id).secret
    events.publish("issue.sent", {"issue_id": 7})
    db.session.commit()
    run_jobs()

    [request] = receiver.received
    assert len(request.headers["webhook-signature"].split()) == 2
    verify_with_library(old, request)
    verify_with_library(new, request)
    db.session.remove()
    endpoint = db.session.get(WebhookEndpoint, hook.id)
    assert endpoint is not None
    later = utcnow() + service.ROTATION_GRACE + timedelta(seconds=1)
    assert service.live_secrets(endpoint, later) == [new]


def test_a_lost_job_is_queued_again_by_the_sweep(
    app: Flask, receiver: WebhookReceiver, run_jobs: Callable[[], None]
) -> None:
    endpoint = register(receiver)
    events.publish("issue.sent", {"issue_id": 7})
    db.session.commit()
    app.extensions["dramatiq"].flush_all()  # the broker loses the job

    assert service.enqueue_stalled() == 0  # not overdue yet: its job may still come
    assert service.enqueue_stalled(now=utcnow() + timedelta(minutes=2)) == 1
    run_jobs()
    assert len(receiver.received) == 1
    assert [m.status for m in log_of(endpoint.id)] == [MessageStatus.DELIVERED]


def test_erasing_a_subscriber_erases_the_messages_that_name_them(
    app: Flask, receiver: WebhookReceiver
) -> None:
    from newsletter.audience.erasure import erase

    endpoint = register(receiver)
    news = make_list("news", optin=OptIn.SINGLE)
    ada_id = make_subscriber("ada@example.org", lists=(news,)).id
    subscriptions.unsubscribe(ada_id, None)
    assert len(log_of(endpoint.id)) == 1
    erase(db.session.get(Subscriber, ada_id))  # type: ignore[arg-type]
    db.session.commit()

    assert log_of(endpoint.id) == []
    assert db.session.scalar(select(func.count()).select_from(WebhookAttempt)) == 0


@pytest.mark.parametrize(
    ("setting", "delays"),
    [("5,300, 1800", [5.0, 300.0, 1800.0]), (5, [5.0]), ("", []), ("0.5", [0.5])],
)
def test_the_retry_schedule_setting_reads_seconds(
    app: Flask, setting: object, delays: list[float]
) -> None:
    app.config["WEBHOOKS_RETRY_SCHEDULE"] = setting
    assert service.retry_schedule() == delays
    assert service.max_attempts() == len(delays) + 1


@pytest.mark.parametrize("setting", ["5,soon", "-1"])
def test_a_bad_retry_schedule_names_the_setting(app: Flask, setting: str) -> None:
    from newsletter.errors import ConfigError

    app.config["WEBHOOKS_RETRY_SCHEDULE"] = setting
    with pytest.raises(ConfigError) as error:
        service.retry_schedule()
    assert error.value.setting == "NEWSLETTER_WEBHOOKS_RETRY_SCHEDULE"


def test_the_one_click_unsubscribe_of_a_mail_provider_is_published(
    app: Flask, client: Any, receiver: WebhookReceiver, run_jobs: Callable[[], None]
) -> None:
    hook = register(receiver, kinds=("subscriber.unsubscribed",))
    news = make_list("news")
    ada = make_subscriber("ada@example.org", lists=(news,))
    token = make_token("unsubscribe", ada.id, news.id, version=ada.token_version)
    ada_id = ada.id

    answer = client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200
    run_jobs()

    [request] = receiver.received
    verify_with_library(hook.secret, request)
    assert request.json()["data"] == {"subscriber_id": ada_id, "email": "ada@example.org",
                                      "list": "news"}  # fmt: skip
