"""The provider webhooks' checks and readers, each provider signing as it really does: a good
signature is taken and read into reports, a wrong one, a stale one and a replay are refused
with nothing handed on. The SNS certificate comes from a real HTTPS server on loopback.

These call ``providers.receive`` with a handler of the test's own (the sink every webhook
hands its reports to); ``tests/web/test_api_bounce_hooks.py`` goes through HTTP to the
policy and its rows.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from newsletter.delivery.bounces.models import BounceKind, BounceSource
from newsletter.delivery.bounces.providers import (
    ProviderNotConfigured,
    ProviderReport,
    WebhookMalformed,
    WebhookRefused,
    WebhookRequest,
    receive,
)
from newsletter.delivery.bounces.providers import ses as ses_module
from tests.delivery import webhook_samples as samples
from tests.tls import Certificate, HttpsServer, make_certificate

CERT_PATH = "/SimpleNotificationService-0123456789abcdef.pem"
POSTMARK_PASSWORD = "a long random password for postmark"


class Collected(list[tuple[ProviderReport, BounceSource]]):
    """The test's handler: keeps what it is handed."""

    def __call__(self, report: ProviderReport, source: BounceSource) -> None:
        self.append((report, source))

    def kinds(self) -> list[tuple[str, BounceKind]]:
        return [(report.email, report.kind) for report, _ in self]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """The HTTPS server's certificate (also the CA file the fetch trusts)."""
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def signing(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """The certificate SNS signs with (served at ``CERT_PATH``)."""
    return make_certificate(tmp_path_factory.mktemp("signing"), "sns.amazonaws.com")


@pytest.fixture
def sns(tls: Certificate, signing: Certificate) -> Iterator[HttpsServer]:
    """A local HTTPS server in SNS's place: the signing certificate and the confirm URL."""
    ses_module.forget_certificates()
    server = HttpsServer(tls).start()
    server.files[CERT_PATH] = signing.pem
    server.files["/confirm"] = b"<ConfirmSubscriptionResponse/>"
    yield server
    server.stop()
    ses_module.forget_certificates()


@pytest.fixture
def sendgrid_keys() -> tuple[Any, str]:
    return samples.sendgrid_keys()


@pytest.fixture
def app_config(
    app_config: dict[str, Any], tls: Certificate, sendgrid_keys: tuple[Any, str]
) -> dict[str, Any]:
    return {
        **app_config,
        "BOUNCE_SES_TOPICS": samples.TOPIC,
        "BOUNCE_SNS_CERT_HOSTS": "localhost",  # the local server stands in for SNS
        "BOUNCE_SNS_CA_FILE": str(tls.cert_path),
        "BOUNCE_POSTMARK_PASSWORD": POSTMARK_PASSWORD,
        "BOUNCE_SENDGRID_PUBLIC_KEY": sendgrid_keys[1],
        "BOUNCE_MAILGUN_SIGNING_KEY": samples.MAILGUN_KEY,
    }


@pytest.fixture
def handler() -> Collected:
    return Collected()


def webhook(body: bytes, headers: dict[str, str], now: float | None = None) -> WebhookRequest:
    return WebhookRequest(
        body, {name.lower(): value for name, value in headers.items()}, now or time.time()
    )


def sns_post(body: dict[str, Any], handler: Collected) -> Any:
    return receive("ses", webhook(*samples.sns_request(body)), handler=handler)


# --- SES through SNS ------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_ses_bounce_is_taken_with_either_signature_version(
    app: Flask, sns: HttpsServer, signing: Certificate, handler: Collected, version: str
) -> None:
    notification = samples.ses_bounce("Gone@Example.com", "dead@example.net",
                                      source="bounces+abc@example.org")  # fmt: skip
    body = samples.sns_message(
        "Notification", cert_url=sns.url(CERT_PATH), key=signing.key, version=version,
        message=json.dumps(notification),
    )  # fmt: skip
    sns_post(body, handler)
    assert handler.kinds() == [
        ("gone@example.com", BounceKind.HARD),
        ("dead@example.net", BounceKind.HARD),
    ]
    report, source = handler[0]
    assert source is BounceSource.SES
    assert "550 5.1.1 user unknown" in report.reason
    assert report.provider_message_id == "0100017a-ses-message-id"
    assert report.return_path == "bounces+abc@example.org"
    assert sns.requests == [CERT_PATH]


def test_transient_bounces_are_soft_and_complaints_complaints(
    app: Flask, sns: HttpsServer, signing: Certificate, handler: Collected
) -> None:
    for notification in (samples.ses_bounce("full@example.com", bounce_type="Transient"),
                         samples.ses_complaint("angry@example.com")):  # fmt: skip
        body = samples.sns_message("Notification", cert_url=sns.url(CERT_PATH), key=signing.key,
                                   message=json.dumps(notification))  # fmt: skip
        sns_post(body, handler)
    assert handler.kinds() == [
        ("full@example.com", BounceKind.SOFT),
        ("angry@example.com", BounceKind.COMPLAINT),
    ]
    assert sns.requests == [CERT_PATH]  # the certificate was fetched once, then kept


def test_a_notification_without_subject_is_signed_without_it(
    app: Flask, sns: HttpsServer, signing: Certificate, handler: Collected
) -> None:
    body = samples.sns_message("Notification", cert_url=sns.url(CERT_PATH), key=signing.key,
                               message=json.dumps(samples.ses_bounce("a@example.com")),
                               subject=None)  # fmt: skip
    sns_post(body, handler)
    assert handler.kinds() == [("a@example.com", BounceKind.HARD)]


def test_a_tampered_ses_message_is_refused(
    app: Flask, sns: HttpsServer, signing: Certificate, handler: Collected
) -> None:
    body = samples.sns_message("Notification", cert_url=sns.url(CERT_PATH), key=signing.key,
                               message=json.dumps(samples.ses_bounce("a@example.com")))  # fmt: skip
    body["Message"] = json.dumps(samples.ses_bounce("someone-else@example.com"))
    with pytest.raises(WebhookRefused, match="signature does not match"):
        sns_post(body, handler)
    assert handler == []


def test_a_message_signed_by_another_key_is_refused(
    app: Flask, sns: HttpsServer, tls: Certificate, handler: Collected
) -> None:
    body = samples.sns_message("Notification", cert_url=sns.url(CERT_PATH), key=tls.key,
                               message=json.dumps(samples.ses_bounce("a@example.com")))  # fmt: skip
    with pytest.raises(WebhookRefused, match="signature does not match"):
        sns_post(body, handler)
    assert handler == []


@pytest.mark.parametrize(
    "cert_url",
    [
        "http://localhost/cert.pem",  # not https
        "https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem",
        "https://user@localhost/cert.pem",
        "https://localhost.evil.example/cert.pem",
    ],
)
def test_a_certificate_url_off_the_sns_hosts_is_refused_without_fetching(
    app: Flask, sns: HttpsServer, signing: Certificate, handler: Collected, cert_url: str
) -> None:
    body = samples.sns_message("Notification", cert_url=cert_url, key=signing.key,
                               message=json.dumps(samples.ses_bounce("a@example.com")))  # fmt: skip
    with pytest.raises(WebhookRefused):
        sns_post(body, handler)
    assert handler == [] and sns.requests == []


def test_the_default_host_rule_is_snss_own_hosts_only(app: Flask) -> None:
    config = {"BOUNCE_SNS_CERT_HOSTS": None}
    ses_module._check_url("https://sns.eu-west-1.amazonaws.com/x.pem", config, "url")
    ses_module._check_url("https://sns.cn-north-1.amazonaws.com.cn/x.pem", config, "url")
    for url in ("https://sns.evil.s3.amazonaws.com/x.pem", "https://localhost/x.pem",
                "https://sns.amazonaws.com.evil.example/x.pem"):  # fmt: skip
        with pytest.raises(WebhookRefused):
            ses_module._check_url(url, config, "url")


def test_a_topic_that_is_not_ours_is_refused(
    app: Flask, sns: HttpsServer, signing: Certificate, handler: Collected
) -> None:
    body = samples.sns_message("Notification", cert_url=sns.url(CERT_PATH), key=signing.key,
                               topic="arn:aws:sns:eu-west-1:999999999999:someone-elses",
                               message=json.dumps(samples.ses_bounce("a@example.com")))  # fmt: skip
    with pytest.raises(WebhookRefused, match="BOUNCE_SES_TOPICS"):
        sns_post(body, handler)
    assert handler == []


def test_a_stale_or_replayed_ses_message_is_refused(
    app: Flask, sns: HttpsServer, signing: Certificate, handler: Collected
) -> None:
    message = json.dumps(samples.ses_bounce("a@example.com"))
    stale = samples.sns_message("Notification", cert_url=sns.url(CERT_PATH), key=signing.key,
                                message=message,
                                timestamp=datetime.now(UTC) - timedelta(hours=2))  # fmt: skip
    with pytest.raises(WebhookRefused, match="too old"):
        sns_post(stale, handler)
    fresh = samples.sns_message("Notification", cert_url=sns.url(CERT_PATH), key=signing.key,
                                message=message)  # fmt: skip
    sns_post(fresh, handler)
    with pytest.raises(WebhookRefused, match="replay"):
        sns_post(fresh, handler)
    assert handler.kinds() == [("a@example.com", BounceKind.HARD)]


def test_a_message_whose_handling_failed_is_taken_when_sns_sends_it_again(
    app: Flask, sns: HttpsServer, signing: Certificate
) -> None:
    body = samples.sns_message("Notification", cert_url=sns.url(CERT_PATH), key=signing.key,
                               message=json.dumps(samples.ses_bounce("a@example.com")))  # fmt: skip

    def broken(report: ProviderReport, source: BounceSource) -> None:
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        receive("ses", webhook(*samples.sns_request(body)), handler=broken)
    handler = Collected()
    sns_post(body, handler)  # SNS's retry: not a replay, since nothing was taken
    assert handler.kinds() == [("a@example.com", BounceKind.HARD)]


def test_a_subscription_is_confirmed_by_a_get_of_its_subscribe_url(
    app: Flask, sns: HttpsServer, signing: Certificate, handler: Collected
) -> None:
    body = samples.sns_message(
        "SubscriptionConfirmation",
        cert_url=sns.url(CERT_PATH),
        key=signing.key,
        subscribe_url=sns.url("/confirm?Action=ConfirmSubscription&Token=t"),
    )
    received = sns_post(body, handler)
    assert "confirmed" in received.note
    assert sns.requests == [CERT_PATH, "/confirm?Action=ConfirmSubscription&Token=t"]
    assert handler == []


def test_a_subscribe_url_off_the_sns_hosts_is_not_followed(
    app: Flask, sns: HttpsServer, signing: Certificate, handler: Collected
) -> None:
    body = samples.sns_message(
        "SubscriptionConfirmation",
        cert_url=sns.url(CERT_PATH),
        key=signing.key,
        subscribe_url="https://evil.example/confirm",
    )
    with pytest.raises(WebhookRefused, match="SubscribeURL"):
        sns_post(body, handler)
    assert sns.requests == [CERT_PATH]


def test_auto_confirm_off_leaves_the_url_to_an_admin(
    app: Flask, sns: HttpsServer, signing: Certificate, handler: Collected
) -> None:
    app.config["BOUNCE_SNS_AUTO_CONFIRM"] = False
    body = samples.sns_message(
        "SubscriptionConfirmation",
        cert_url=sns.url(CERT_PATH),
        key=signing.key,
        subscribe_url=sns.url("/confirm?Token=t"),
    )
    assert "left to an admin" in sns_post(body, handler).note
    assert sns.requests == [CERT_PATH]


def test_a_certificate_the_server_does_not_have_refuses_the_message(
    app: Flask, sns: HttpsServer, signing: Certificate, handler: Collected
) -> None:
    body = samples.sns_message("Notification", cert_url=sns.url("/missing.pem"), key=signing.key,
                               message=json.dumps(samples.ses_bounce("a@example.com")))  # fmt: skip
    with pytest.raises(WebhookRefused, match="could not be fetched"):
        sns_post(body, handler)


def test_a_certificate_from_a_server_we_do_not_trust_is_not_fetched(
    app: Flask, sns: HttpsServer, signing: Certificate, handler: Collected, tmp_path: Path
) -> None:
    app.config["BOUNCE_SNS_CA_FILE"] = str(make_certificate(tmp_path / "other").cert_path)
    body = samples.sns_message("Notification", cert_url=sns.url(CERT_PATH), key=signing.key,
                               message=json.dumps(samples.ses_bounce("a@example.com")))  # fmt: skip
    with pytest.raises(WebhookRefused, match="could not be fetched"):
        sns_post(body, handler)


# --- Postmark -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("postmark_type", "kind"),
    [
        ("HardBounce", BounceKind.HARD),
        ("SoftBounce", BounceKind.SOFT),
        ("Transient", BounceKind.SOFT),
        ("SpamComplaint", BounceKind.COMPLAINT),
    ],
)
def test_postmark_records_with_the_right_credentials_are_taken(
    app: Flask, handler: Collected, postmark_type: str, kind: BounceKind
) -> None:
    body = json.dumps(samples.postmark_bounce("Ada@Example.com", postmark_type)).encode()
    receive("postmark", webhook(body, samples.basic_auth("postmark", POSTMARK_PASSWORD)),
            handler=handler)  # fmt: skip
    assert handler.kinds() == [("ada@example.com", kind)]
    assert handler[0][0].provider_message_id == "883953f4-6105-42a2-a16a-77a8eac79483"


def test_postmark_records_that_are_not_bounces_report_nothing(
    app: Flask, handler: Collected
) -> None:
    body = json.dumps(samples.postmark_bounce("ada@example.com", "AutoResponder")).encode()
    receive("postmark", webhook(body, samples.basic_auth("postmark", POSTMARK_PASSWORD)),
            handler=handler)  # fmt: skip
    assert handler == []


@pytest.mark.parametrize(
    "headers",
    [
        samples.basic_auth("postmark", "wrong"),
        samples.basic_auth("someone", POSTMARK_PASSWORD),
        {"Authorization": "Bearer " + POSTMARK_PASSWORD},
        {"Authorization": "Basic not-base64!"},
        {},
    ],
)
def test_postmark_without_the_right_credentials_is_refused(
    app: Flask, handler: Collected, headers: dict[str, str]
) -> None:
    body = json.dumps(samples.postmark_bounce("ada@example.com")).encode()
    with pytest.raises(WebhookRefused) as refused:
        receive("postmark", webhook(body, headers), handler=handler)
    assert refused.value.status == 401
    assert handler == []


# --- SendGrid -----------------------------------------------------------------------------


def test_signed_sendgrid_events_are_taken(
    app: Flask, handler: Collected, sendgrid_keys: tuple[Any, str]
) -> None:
    events = [
        samples.sendgrid_event("gone@example.com", "bounce", type="bounce", status="5.1.1",
                               reason="550 5.1.1 unknown user"),
        samples.sendgrid_event("blocked@example.com", "bounce", type="blocked", status="4.0.0"),
        samples.sendgrid_event("old@example.com", "dropped", reason="Bounced Address"),
        samples.sendgrid_event("angry@example.com", "spamreport"),
        samples.sendgrid_event("fine@example.com", "delivered"),
        samples.sendgrid_event("later@example.com", "deferred"),
        samples.sendgrid_event("bye@example.com", "dropped", reason="Unsubscribed Address"),
    ]  # fmt: skip
    receive("sendgrid", webhook(*samples.sendgrid_request(events, sendgrid_keys[0])),
            handler=handler)  # fmt: skip
    assert handler.kinds() == [
        ("gone@example.com", BounceKind.HARD),
        ("blocked@example.com", BounceKind.SOFT),
        ("old@example.com", BounceKind.HARD),
        ("angry@example.com", BounceKind.COMPLAINT),
    ]
    assert "550 5.1.1 unknown user" in handler[0][0].reason


def test_sendgrid_with_a_wrong_signature_is_refused(
    app: Flask, handler: Collected, sendgrid_keys: tuple[Any, str]
) -> None:
    other_key, _ = samples.sendgrid_keys()
    events = [samples.sendgrid_event("gone@example.com", "bounce", type="bounce")]
    body, headers = samples.sendgrid_request(events, other_key)
    with pytest.raises(WebhookRefused, match="does not match"):
        receive("sendgrid", webhook(body, headers), handler=handler)
    body, headers = samples.sendgrid_request(events, sendgrid_keys[0])
    tampered = body.replace(b"gone@", b"else@")
    with pytest.raises(WebhookRefused, match="does not match"):
        receive("sendgrid", webhook(tampered, headers), handler=handler)
    del headers["X-Twilio-Email-Event-Webhook-Signature"]
    with pytest.raises(WebhookRefused, match="missing"):
        receive("sendgrid", webhook(body, headers), handler=handler)
    assert handler == []


def test_sendgrid_stale_or_replayed_is_refused(
    app: Flask, handler: Collected, sendgrid_keys: tuple[Any, str]
) -> None:
    events = [samples.sendgrid_event("gone@example.com", "bounce", type="bounce")]
    stale = samples.sendgrid_request(events, sendgrid_keys[0], timestamp=int(time.time()) - 7200)
    with pytest.raises(WebhookRefused, match="stale"):
        receive("sendgrid", webhook(*stale), handler=handler)
    fresh = samples.sendgrid_request(events, sendgrid_keys[0])
    receive("sendgrid", webhook(*fresh), handler=handler)
    with pytest.raises(WebhookRefused, match="replay"):
        receive("sendgrid", webhook(*fresh), handler=handler)
    assert handler.kinds() == [("gone@example.com", BounceKind.HARD)]


# --- Mailgun ------------------------------------------------------------------------------


def test_signed_mailgun_events_are_taken(app: Flask, handler: Collected) -> None:
    for event in (
        samples.mailgun_failed("Gone@example.com", "permanent", sender="bounces+tok@example.org"),
        samples.mailgun_failed("full@example.com", "temporary"),
        samples.mailgun_complained("angry@example.com"),
        {**samples.mailgun_complained("fine@example.com"), "event": "delivered"},
    ):
        receive("mailgun", webhook(*samples.mailgun_request(event)), handler=handler)
    assert handler.kinds() == [
        ("gone@example.com", BounceKind.HARD),
        ("full@example.com", BounceKind.SOFT),
        ("angry@example.com", BounceKind.COMPLAINT),
    ]
    first = handler[0][0]
    assert "550" in first.reason and first.return_path == "bounces+tok@example.org"
    assert first.provider_message_id == "20261201100000.1.ABC@mg.example.org"


def test_mailgun_with_a_wrong_signature_is_refused(app: Flask, handler: Collected) -> None:
    event = samples.mailgun_failed("gone@example.com")
    with pytest.raises(WebhookRefused, match="does not match"):
        receive("mailgun", webhook(*samples.mailgun_request(event, key="key-wrong")),
                handler=handler)  # fmt: skip
    body, headers = samples.mailgun_request(event)
    unsigned = json.dumps({"event-data": json.loads(body)["event-data"]}).encode()
    with pytest.raises(WebhookRefused, match="no signature"):
        receive("mailgun", webhook(unsigned, headers), handler=handler)
    assert handler == []


def test_mailgun_stale_or_replayed_tokens_are_refused(app: Flask, handler: Collected) -> None:
    event = samples.mailgun_failed("gone@example.com")
    stale = samples.mailgun_request(event, timestamp=int(time.time()) - 7200)
    with pytest.raises(WebhookRefused, match="stale"):
        receive("mailgun", webhook(*stale), handler=handler)
    token = secrets.token_hex(25)  # new each run: Redis remembers tokens across tests
    receive("mailgun", webhook(*samples.mailgun_request(event, token=token)), handler=handler)
    # The same token again, even freshly signed with a new timestamp: a replay.
    again = samples.mailgun_request(event, token=token, timestamp=int(time.time()) + 1)
    with pytest.raises(WebhookRefused, match="replay"):
        receive("mailgun", webhook(*again), handler=handler)
    assert handler.kinds() == [("gone@example.com", BounceKind.HARD)]


# --- what every provider shares -------------------------------------------------------------


def test_a_provider_without_its_secret_is_not_there(app: Flask, handler: Collected) -> None:
    app.config["BOUNCE_MAILGUN_SIGNING_KEY"] = None
    with pytest.raises(ProviderNotConfigured):
        receive("mailgun", webhook(*samples.mailgun_request(samples.mailgun_failed("a@b.c"))),
                handler=handler)  # fmt: skip
    with pytest.raises(ProviderNotConfigured):
        receive("nosuch", webhook(b"{}", {}), handler=handler)


def test_a_body_that_is_not_json_is_malformed(app: Flask, handler: Collected) -> None:
    with pytest.raises(WebhookMalformed):
        receive("postmark", webhook(b"<xml/>", samples.basic_auth("postmark", POSTMARK_PASSWORD)),
                handler=handler)  # fmt: skip
