"""POST /api/v1/bounces/<provider>, end to end: a provider's signed request becomes a bounce
event through the policy (the address stops, or is unsubscribed everywhere); a refused one
changes nothing; no bearer token is needed, and the answer never says whether the address
is one of ours.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from newsletter.audience.models import Subscriber, SubscriberStatus, SubscriptionStatus
from newsletter.audit import AuditEvent
from newsletter.delivery.bounces.models import BounceEvent, BounceKind, BounceSource
from newsletter.delivery.bounces.providers import MAX_BODY_BYTES
from newsletter.delivery.bounces.providers import ses as ses_module
from newsletter.delivery.bounces.returnpath import make_token
from newsletter.delivery.models import Delivery
from newsletter.extensions import db
from tests.delivery import webhook_samples as samples
from tests.factories import make_issue, make_list, make_statement, make_subscriber
from tests.tls import Certificate, HttpsServer, make_certificate
from tests.web.api_client import API, assert_error

CERT_PATH = "/SimpleNotificationService-test.pem"
PASSWORD = "postmark password, long and random"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def signing(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("signing"), "sns.amazonaws.com")


@pytest.fixture
def sns(tls: Certificate, signing: Certificate) -> Iterator[HttpsServer]:
    ses_module.forget_certificates()
    server = HttpsServer(tls).start()
    server.files[CERT_PATH] = signing.pem
    yield server
    server.stop()
    ses_module.forget_certificates()


@pytest.fixture(scope="module")
def sendgrid_keys() -> tuple[Any, str]:
    return samples.sendgrid_keys()


@pytest.fixture
def app_config(
    app_config: dict[str, Any], tls: Certificate, sendgrid_keys: tuple[Any, str]
) -> dict[str, Any]:
    return {
        **app_config,
        "BOUNCE_SES_TOPICS": samples.TOPIC,
        "BOUNCE_SNS_CERT_HOSTS": "localhost",
        "BOUNCE_SNS_CA_FILE": str(tls.cert_path),
        "BOUNCE_POSTMARK_PASSWORD": PASSWORD,
        "BOUNCE_SENDGRID_PUBLIC_KEY": sendgrid_keys[1],
        "BOUNCE_MAILGUN_SIGNING_KEY": samples.MAILGUN_KEY,
    }


@pytest.fixture
def readers(app: Flask) -> dict[str, Subscriber]:
    news, alerts = make_list("news"), make_list("alerts")
    return {
        name: make_subscriber(f"{name}@example.com", lists=(news, alerts))
        for name in ("ada", "bo", "cy")
    }


def events() -> list[tuple[str, BounceKind, BounceSource]]:
    db.session.expire_all()
    rows = db.session.execute(
        select(Subscriber.email, BounceEvent.kind, BounceEvent.source)
        .join(Subscriber, Subscriber.id == BounceEvent.subscriber_id)
        .order_by(BounceEvent.id)
    ).all()
    return [(email, kind, source) for email, kind, source in rows]


def status_of(email: str) -> SubscriberStatus:
    db.session.expire_all()
    return db.session.scalars(select(Subscriber.status).where(Subscriber.email == email)).one()


def post(client: FlaskClient, provider: str, body: bytes, headers: dict[str, str]) -> Any:
    return client.post(f"{API}/bounces/{provider}", data=body, headers=headers)


def test_a_signed_ses_bounce_stops_the_address_and_names_its_issue(
    client: FlaskClient, readers: dict[str, Subscriber], sns: HttpsServer, signing: Certificate
) -> None:
    issue = make_issue((make_statement(),), (readers["ada"].subscriptions[0].list,))
    delivery = Delivery(issue_id=issue.id, subscriber_id=readers["ada"].id)
    db.session.add(delivery)
    db.session.commit()
    return_path = f"bounces+{make_token(delivery.id, 'test-secret-key')}@example.org"
    notification = samples.ses_bounce("ada@example.com", source=return_path)
    body = samples.sns_message("Notification", cert_url=sns.url(CERT_PATH), key=signing.key,
                               version="2", message=json.dumps(notification))  # fmt: skip
    response = post(client, "ses", *samples.sns_request(body))  # no bearer token
    assert response.status_code == 204 and response.data == b""
    assert events() == [("ada@example.com", BounceKind.HARD, BounceSource.SES)]
    event = db.session.scalars(select(BounceEvent)).one()
    assert (event.issue_id, event.delivery_id) == (issue.id, delivery.id)
    assert "5.1.1" in event.reason
    assert status_of("ada@example.com") is SubscriberStatus.BLOCKLISTED
    assert status_of("bo@example.com") is SubscriberStatus.ACTIVE


def test_a_wrongly_signed_ses_message_is_refused_and_changes_nothing(
    client: FlaskClient, readers: dict[str, Subscriber], sns: HttpsServer, tls: Certificate
) -> None:
    message = json.dumps(samples.ses_bounce("ada@example.com"))
    body = samples.sns_message("Notification", cert_url=sns.url(CERT_PATH), key=tls.key,
                               message=message)  # fmt: skip
    response = post(client, "ses", *samples.sns_request(body))
    assert_error(response, 403, None)
    assert events() == []
    assert status_of("ada@example.com") is SubscriberStatus.ACTIVE


def test_a_postmark_complaint_unsubscribes_the_address_from_every_list(
    client: FlaskClient, readers: dict[str, Subscriber]
) -> None:
    body = json.dumps(samples.postmark_bounce("bo@example.com", "SpamComplaint")).encode()
    response = post(client, "postmark", body, samples.basic_auth("postmark", PASSWORD))
    assert response.status_code == 204
    assert events() == [("bo@example.com", BounceKind.COMPLAINT, BounceSource.POSTMARK)]
    bo = db.session.scalars(select(Subscriber).where(Subscriber.email == "bo@example.com")).one()
    assert {s.status for s in bo.subscriptions} == {SubscriptionStatus.UNSUBSCRIBED}


def test_postmark_without_its_credentials_gets_a_basic_challenge(
    client: FlaskClient, readers: dict[str, Subscriber]
) -> None:
    body = json.dumps(samples.postmark_bounce("bo@example.com")).encode()
    response = post(client, "postmark", body, samples.basic_auth("postmark", "guess"))
    assert_error(response, 401, None)
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert events() == []


def test_sendgrid_events_are_recorded_and_a_wrong_signature_refused(
    client: FlaskClient, readers: dict[str, Subscriber], sendgrid_keys: tuple[Any, str]
) -> None:
    batch = [
        samples.sendgrid_event("ada@example.com", "bounce", type="bounce", status="5.1.1"),
        samples.sendgrid_event("cy@example.com", "spamreport"),
    ]
    forged = samples.sendgrid_request(batch, samples.sendgrid_keys()[0])
    assert_error(post(client, "sendgrid", *forged), 403, None)
    assert events() == []
    good = samples.sendgrid_request(batch, sendgrid_keys[0])
    assert post(client, "sendgrid", *good).status_code == 204
    assert events() == [
        ("ada@example.com", BounceKind.HARD, BounceSource.SENDGRID),
        ("cy@example.com", BounceKind.COMPLAINT, BounceSource.SENDGRID),
    ]
    assert_error(post(client, "sendgrid", *good), 403, None)  # the same request again
    assert len(events()) == 2


def test_mailgun_soft_bounce_is_scored_and_a_replayed_token_refused(
    client: FlaskClient, readers: dict[str, Subscriber]
) -> None:
    request = samples.mailgun_request(samples.mailgun_failed("cy@example.com", "temporary"))
    assert post(client, "mailgun", *request).status_code == 204
    assert_error(post(client, "mailgun", *request), 403, None)
    assert events() == [("cy@example.com", BounceKind.SOFT, BounceSource.MAILGUN)]
    cy = db.session.scalars(select(Subscriber).where(Subscriber.email == "cy@example.com")).one()
    assert cy.bounce_score == 1 and cy.status is SubscriberStatus.ACTIVE


def test_the_answer_is_the_same_for_an_address_nobody_has(
    client: FlaskClient, readers: dict[str, Subscriber]
) -> None:
    known = samples.mailgun_request(samples.mailgun_failed("ada@example.com"))
    stranger = samples.mailgun_request(samples.mailgun_failed("nobody@example.com"))
    first, second = post(client, "mailgun", *known), post(client, "mailgun", *stranger)
    assert (first.status_code, first.data, first.headers.get("Content-Type")) == (
        second.status_code, second.data, second.headers.get("Content-Type"),
    )  # fmt: skip
    assert events() == [("ada@example.com", BounceKind.HARD, BounceSource.MAILGUN)]


def test_a_provider_that_is_not_configured_is_not_found(
    app: Flask, client: FlaskClient, readers: dict[str, Subscriber]
) -> None:
    app.config["BOUNCE_MAILGUN_SIGNING_KEY"] = None
    request = samples.mailgun_request(samples.mailgun_failed("ada@example.com"))
    assert_error(post(client, "mailgun", *request), 404, None)
    assert events() == []


def test_a_body_past_the_cap_is_refused_before_it_is_read(
    client: FlaskClient, readers: dict[str, Subscriber]
) -> None:
    body = b"[" + b" " * MAX_BODY_BYTES + b"]"
    response = post(client, "sendgrid", body, {"Content-Type": "application/json"})
    assert_error(response, 413, None)


def test_a_malformed_body_is_a_400(client: FlaskClient) -> None:
    response = post(client, "postmark", b"not json", samples.basic_auth("postmark", PASSWORD))
    assert_error(response, 400, None)
    odd = json.dumps({"Type": "Notification", "TopicArn": ["a", "list"]}).encode()
    assert_error(post(client, "ses", odd, {"Content-Type": "text/plain"}), 403, None)
    assert_error(post(client, "ses", b"[1, 2]", {"Content-Type": "text/plain"}), 400, None)


def test_webhooks_leave_no_audit_rows(client: FlaskClient, readers: dict[str, Subscriber]) -> None:
    request = samples.mailgun_request(samples.mailgun_failed("ada@example.com"))
    assert post(client, "mailgun", *request).status_code == 204
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_the_webhooks_are_in_the_document_without_the_bearer_scheme(app: Flask) -> None:
    document = app.extensions["newsletter_api"].spec.to_dict()
    for provider in ("ses", "postmark", "sendgrid", "mailgun"):
        operation = document["paths"][f"/bounces/{provider}"]["post"]
        assert operation["security"] == []
        assert {"204", "403", "404", "413"} <= set(map(str, operation["responses"]))
    assert "401" in map(str, document["paths"]["/bounces/postmark"]["post"]["responses"])
