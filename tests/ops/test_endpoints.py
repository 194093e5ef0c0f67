"""``/healthz``, ``/readyz`` and ``/metrics``, as a load balancer and Prometheus use them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from newsletter import create_app
from newsletter.audience.lists import create_list
from newsletter.audience.models import ConsentSource, OptIn
from newsletter.audience.subscriptions import subscribe
from newsletter.delivery.bounces import policy
from newsletter.delivery.bounces.models import BounceSource
from newsletter.delivery.send import dispatcher
from tests.delivery.helpers import make_audience, make_sendable_issue
from tests.factories import make_list, make_subscriber
from tests.helpers import free_port
from tests.smtp import CapturingSMTPServer


def scrape(app: Flask, **request: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: (name, sorted labels) → value."""
    response = app.test_client().get("/metrics", **request)
    assert response.status_code == 200, response.text
    assert response.mimetype == "text/plain"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_healthz_answers_while_the_process_lives(app: Flask) -> None:
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_checks_the_database_broker_and_migrations(app: Flask) -> None:
    response = app.test_client().get("/readyz")
    assert response.status_code == 200, response.json
    assert response.json == {
        "status": "ready",
        "checks": {"database": "ok", "broker": "ok", "migrations": "current"},
    }


def test_readyz_is_503_when_the_database_is_unreachable(app_config: dict[str, Any]) -> None:
    down = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
    app = create_app({**app_config, "DATABASE_URL": down})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["status"] == "not ready"
    assert response.json["checks"]["database"] == "unreachable"


def test_readyz_is_503_when_the_broker_is_unreachable(
    app_config: dict[str, Any], app: Flask
) -> None:
    broken = create_app({**app_config, "BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"})
    with broken.app_context():
        response = broken.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["broker"] == "unreachable"
    assert response.json["checks"]["database"] == "ok"


def test_metrics_count_replies_by_relay_and_class_and_the_ledger_totals(
    app: Flask, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    audience = make_audience()
    refused = audience.emails[0]
    mailbox.handler.refuse[refused] = "550 5.1.1 no such user"
    relay = f"127.0.0.1:{mailbox.port}"
    before = scrape(app)

    def replies(reply_class: str, samples: dict[Any, float]) -> float:
        key = ("newsletter_smtp_replies_total", (("relay", relay), ("reply_class", reply_class)))
        return samples.get(key, 0.0)

    dispatcher.request_send(make_sendable_issue(audience.news, audience.events).id)
    run_jobs()
    after = scrape(app)

    assert replies("2xx", after) - replies("2xx", before) == len(audience.emails) - 1
    assert replies("5xx", after) - replies("5xx", before) == 1
    hard = ("newsletter_bounces_total", (("kind", "hard"), ("source", "smtp")))
    assert after[hard] - before.get(hard, 0.0) == 1  # the 550 is a hard bounce
    assert after[("newsletter_messages_total", (("outcome", "sent"),))] == len(audience.emails) - 1
    assert after[("newsletter_messages_total", (("outcome", "failed"),))] == 1
    assert after[("newsletter_messages_pending", ())] == 0
    assert after[("newsletter_issues", (("status", "sent"),))] == 1
    assert ("newsletter_queue_depth", (("queue", "delivery"),)) in after
    assert ("newsletter_send_rate", ()) in after


def test_metrics_count_signups_and_confirmations(app: Flask) -> None:
    before = scrape(app)
    create_list("single", "Single", optin=OptIn.SINGLE)
    subscribe("ann@example.org", list_slugs=["single"], source=ConsentSource.API)
    after = scrape(app)
    key = ("newsletter_signups_total", (("via", "api"),))
    assert after[key] - before.get(key, 0.0) == 1


def test_metrics_count_bounces_and_complaints_by_kind(app: Flask) -> None:
    make_subscriber("ann@example.org", lists=(make_list("news"),))
    before = scrape(app)
    policy.record("ann@example.org", "complaint", "abuse report", BounceSource.MAILBOX)
    policy.record("nobody@example.org", "hard", "550", BounceSource.API)  # not ours: not kept
    after = scrape(app)
    key = ("newsletter_bounces_total", (("kind", "complaint"), ("source", "mailbox")))
    assert after[key] - before.get(key, 0.0) == 1
    unknown = ("newsletter_bounces_total", (("kind", "hard"), ("source", "api")))
    assert after.get(unknown, 0.0) == before.get(unknown, 0.0)


def test_metrics_are_refused_to_other_addresses_and_without_the_token(
    app_config: dict[str, Any], app: Flask
) -> None:
    client = app.test_client()
    outside = {"environ_base": {"REMOTE_ADDR": "203.0.113.9"}}
    assert client.get("/metrics", **outside).status_code == 403
    assert client.get("/metrics").status_code == 200  # loopback, the default

    allowed = create_app({**app_config, "METRICS_ALLOW": "203.0.113.0/24"})
    with allowed.app_context():
        assert allowed.test_client().get("/metrics", **outside).status_code == 200
        assert allowed.test_client().get("/metrics").status_code == 403

    tokened = create_app({**app_config, "METRICS_TOKEN": "s3cret-scrape-token"})
    with tokened.app_context():
        tokened_client = tokened.test_client()
        assert tokened_client.get("/metrics").status_code == 403  # even from loopback
        wrong = {"Authorization": "Bearer nope"}
        assert tokened_client.get("/metrics", headers=wrong).status_code == 403
        right = {"Authorization": "Bearer s3cret-scrape-token"}
        assert tokened_client.get("/metrics", headers=right, **outside).status_code == 200


def test_every_response_carries_a_request_id(app: Flask) -> None:
    client = app.test_client()
    own = client.get("/healthz").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{16}", own)
    given = client.get("/healthz", headers={"X-Request-ID": "proxy-abc.123"})
    assert given.headers["X-Request-ID"] == "proxy-abc.123"
    hostile = client.get("/healthz", headers={"X-Request-ID": "a b\"<script>"})
    assert re.fullmatch(r"[0-9a-f]{16}", hostile.headers["X-Request-ID"])
