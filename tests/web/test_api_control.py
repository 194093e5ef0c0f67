"""The API's control of a send: schedule (with timezones), pause, resume, cancel, retry;
progress with rate and finish; the delivery log by keyset pages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from newsletter.auth.models import User
from newsletter.content.models import Issue, IssueStatus
from newsletter.delivery.send import dispatcher
from newsletter.extensions import db
from newsletter.models import utcnow
from tests.factories import make_issue, make_list, make_statement, make_subscriber
from tests.smtp import CapturingSMTPServer
from tests.web.api_client import Api, assert_error


@pytest.fixture
def api(client: FlaskClient) -> Api:
    from newsletter.auth.services import create_api_token, create_user

    create_user("robot@example.org", "a long enough password 123")
    return Api(client, create_api_token("robot@example.org"))


@pytest.fixture
def issue_id(app: Flask) -> int:
    news = make_list("news")
    for name in ("ada", "bo", "cy"):
        make_subscriber(f"{name}@example.org", lists=(news,))
    return int(make_issue((make_statement(),), (news,), subject="Weekly").id)


def status_of(issue_id: int) -> IssueStatus:
    db.session.expire_all()
    return db.session.get(Issue, issue_id).status


def test_schedule_with_an_offset_is_that_instant(api: Api, issue_id: int) -> None:
    year = utcnow().year + 1
    response = api.post(f"/issues/{issue_id}/schedule", {"send_at": f"{year}-05-01T09:00+02:00"})

    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["status"] == "scheduled"
    assert datetime.fromisoformat(body["send_at"]) == datetime(year, 5, 1, 7, 0, tzinfo=UTC)


def test_schedule_a_local_time_in_a_named_timezone(api: Api, issue_id: int) -> None:
    year = utcnow().year + 1
    response = api.post(
        f"/issues/{issue_id}/schedule",
        {"send_at": f"{year}-12-01 09:00", "timezone": "Asia/Tokyo"},
    )

    assert response.status_code == 200
    sent_at = datetime.fromisoformat(response.get_json()["send_at"])
    assert sent_at == datetime(year, 12, 1, 0, 0, tzinfo=UTC)


def test_without_a_timezone_a_local_time_is_in_the_token_owners_zone(
    api: Api, issue_id: int
) -> None:
    user = db.session.scalars(select(User).where(User.email == "robot@example.org")).one()
    user.timezone = "America/Sao_Paulo"  # UTC-3, no summer time
    db.session.commit()
    year = utcnow().year + 1

    response = api.post(f"/issues/{issue_id}/schedule", {"send_at": f"{year}-02-01T09:00"})

    sent_at = datetime.fromisoformat(response.get_json()["send_at"])
    assert sent_at == datetime(year, 2, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "send_at"),
        ({"send_at": "soon"}, "send_at"),
        ({"send_at": "2001-01-01T00:00Z"}, "send_at"),
        ({"send_at": "2999-01-01T00:00", "timezone": "Nowhere/Land"}, "timezone"),
        ({"send_at": "2999-01-01T00:00", "when": "now"}, "when"),
    ],
)
def test_a_bad_schedule_names_the_field(
    api: Api, issue_id: int, body: dict[str, str], field: str
) -> None:
    assert_error(api.post(f"/issues/{issue_id}/schedule", body), 422, field)
    assert status_of(issue_id) is IssueStatus.DRAFT


def test_pause_resume_cancel_follow_the_status_rules(
    api: Api, issue_id: int, run_jobs: Callable[[], None], mailbox: CapturingSMTPServer
) -> None:
    assert_error(api.post(f"/issues/{issue_id}/pause"), 409, "status")
    dispatcher.request_send(issue_id)

    assert api.post(f"/issues/{issue_id}/pause").get_json()["status"] == "paused"
    run_jobs()
    assert mailbox.messages == []
    assert_error(api.post(f"/issues/{issue_id}/pause"), 409, "status")

    response = api.post(f"/issues/{issue_id}/resume")
    assert (response.status_code, response.get_json()["status"]) == (202, "sending")
    run_jobs()
    assert api.get(f"/issues/{issue_id}").get_json()["status"] == "sent"
    assert len(mailbox.messages) == 3
    assert_error(api.post(f"/issues/{issue_id}/cancel"), 409, "status")


def test_cancel_skips_the_rest(
    api: Api, issue_id: int, run_jobs: Callable[[], None], mailbox: CapturingSMTPServer
) -> None:
    dispatcher.request_send(issue_id)
    dispatcher.start_issue(issue_id)

    body = api.post(f"/issues/{issue_id}/cancel").get_json()
    run_jobs()

    assert body["status"] == "cancelled"
    assert body["counts"] == {"total": 3, "sent": 0, "failed": 0, "pending": 0, "skipped": 3}
    assert mailbox.messages == []


def test_unschedule(api: Api, issue_id: int) -> None:
    api.post(f"/issues/{issue_id}/schedule", {"send_at": "2999-01-01T00:00Z"})

    assert api.post(f"/issues/{issue_id}/unschedule").get_json()["status"] == "draft"


def test_retry_resends_the_failed(
    app: Flask, api: Api, issue_id: int, run_jobs: Callable[[], None],
    mailbox: CapturingSMTPServer,
) -> None:
    app.config["MAX_ATTEMPTS"] = 1
    mailbox.handler.refuse["bo@example.org"] = "452 4.2.2 mailbox full"
    dispatcher.request_send(issue_id)
    run_jobs()
    assert api.get(f"/issues/{issue_id}").get_json()["counts"]["failed"] == 1
    mailbox.handler.refuse.clear()

    response = api.post(f"/issues/{issue_id}/retry")
    run_jobs()

    assert response.status_code == 202
    assert response.get_json()["retried"] == 1
    body = api.get(f"/issues/{issue_id}").get_json()
    assert (body["status"], body["counts"]["sent"], body["counts"]["failed"]) == ("sent", 3, 0)


def test_get_issue_keeps_status_and_counts_and_adds_rate_and_eta(
    api: Api, issue_id: int
) -> None:
    from newsletter.delivery.control import progress

    dispatcher.request_send(issue_id)
    dispatcher.start_issue(issue_id)
    # A minute ago, nothing was sent; now one is: the history gives a rate and a finish.
    progress.progress(issue_id, now=utcnow() - timedelta(seconds=30))
    first = dispatcher.pending_ranges(issue_id, 1)[0][0]
    from newsletter.delivery.send import outcomes

    outcomes.record_sent(first, message_id="x@example.org", reply="250 ok")

    body = api.get(f"/issues/{issue_id}").get_json()

    assert body["status"] == "sending"
    assert body["counts"] == {"total": 3, "sent": 1, "failed": 0, "pending": 2, "skipped": 0}
    assert body["rate"] == pytest.approx(1 / 30, abs=0.05)
    assert body["seconds_left"] == pytest.approx(60, abs=5)
    assert datetime.fromisoformat(body["eta"]) > utcnow()


def test_the_delivery_log_by_issue_email_and_status(
    api: Api, issue_id: int, run_jobs: Callable[[], None], mailbox: CapturingSMTPServer
) -> None:
    mailbox.handler.refuse["cy@example.org"] = "550 5.1.1 unknown user"
    dispatcher.request_send(issue_id)
    run_jobs()

    body = api.get(f"/issues/{issue_id}/deliveries?email=Ada@Example.org").get_json()
    assert [item["email"] for item in body["items"]] == ["ada@example.org"]
    entry = body["items"][0]
    assert entry["status"] == "sent" and entry["last_reply"].startswith("250")
    assert entry["message_id"] and entry["sent_at"] and entry["attempts"] == 1
    assert body["next"] is None

    failed = api.get(f"/issues/{issue_id}/deliveries?status=failed").get_json()["items"]
    assert [(i["email"], i["last_reply"]) for i in failed] == [
        ("cy@example.org", "550 5.1.1 unknown user")
    ]

    across = api.get("/deliveries?email=cy@example.org").get_json()["items"]
    assert [(i["issue"], i["status"]) for i in across] == [(issue_id, "failed")]


def test_the_delivery_log_pages_by_keyset(api: Api, issue_id: int) -> None:
    dispatcher.request_send(issue_id)
    dispatcher.start_issue(issue_id)

    seen: list[str] = []
    after = 0
    while True:
        body = api.get(f"/issues/{issue_id}/deliveries?limit=2&after={after}").get_json()
        seen += [item["email"] for item in body["items"]]
        if body["next"] is None:
            break
        after = body["next"]

    assert sorted(seen) == ["ada@example.org", "bo@example.org", "cy@example.org"]


def test_the_delivery_log_checks_its_parameters(api: Api, issue_id: int) -> None:
    assert_error(api.get(f"/issues/{issue_id}/deliveries?status=lost"), 422, "status")
    assert_error(api.get(f"/issues/{issue_id}/deliveries?limit=0"), 422, "limit")
    assert_error(api.get(f"/issues/{issue_id}/deliveries?after=x"), 422, "after")
    assert_error(api.get("/issues/999999/deliveries"), 404, None)
    assert_error(api.post("/issues/999999/pause"), 404, None)


def test_answers_match_the_openapi_document(
    api: Api, issue_id: int, run_jobs: Callable[[], None]
) -> None:
    pytest.importorskip("openapi_spec_validator")
    from jsonschema.validators import validator_for
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    document = api.get("/openapi.json").get_json()
    registry: Registry[object] = Registry().with_resource(
        "urn:api", Resource.from_contents(document, default_specification=DRAFT202012)
    )

    def check(body: object, schema: str) -> None:
        reference = {"$ref": f"urn:api#/components/schemas/{schema}"}
        validator_for(reference)(reference, registry=registry).validate(body)

    check(api.post(f"/issues/{issue_id}/schedule", {"send_at": "2999-01-01T09:00",
                                                    "timezone": "UTC"}).get_json(), "Issue")
    api.post(f"/issues/{issue_id}/unschedule")
    dispatcher.request_send(issue_id)
    dispatcher.start_issue(issue_id)
    check(api.get(f"/issues/{issue_id}").get_json(), "Issue")
    check(api.post(f"/issues/{issue_id}/pause").get_json(), "Issue")
    run_jobs()  # the queued batches see the pause and stop
    check(api.post(f"/issues/{issue_id}/resume").get_json(), "Issue")
    run_jobs()
    check(api.post(f"/issues/{issue_id}/retry").get_json(), "Retry")
    check(api.get(f"/issues/{issue_id}/deliveries?limit=1").get_json(), "DeliveryPage")
    check(api.get("/deliveries?email=ada@example.org").get_json(), "DeliveryPage")
