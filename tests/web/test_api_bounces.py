"""POST /api/v1/bounces: a raw report (message/rfc822) or JSON; the same answer for known and
unknown addresses; bad input refused in the API's error shape; in the OpenAPI document."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from newsletter.audience.models import Subscriber, SubscriberStatus, SubscriptionStatus
from newsletter.auth.models import Role
from newsletter.auth.services import create_api_token, create_user
from newsletter.delivery.bounces import policy
from newsletter.delivery.bounces.models import BounceKind, BounceSource
from newsletter.extensions import db
from tests.delivery.bounce_samples import dsn, unreadable
from tests.factories import make_list, make_subscriber
from tests.web.api_client import API, Api, assert_error


def post_raw(api: Api, data: bytes | str, content_type: str = "message/rfc822") -> TestResponse:
    return api.call("POST", "/bounces", data=data, content_type=content_type)


@pytest.fixture
def api(app: Flask, client: FlaskClient) -> Api:
    create_user("robot@example.org", "a long enough password 123")
    return Api(client, create_api_token("robot@example.org"))


@pytest.fixture
def reader(app: Flask) -> str:
    make_subscriber("reader@example.net", lists=(make_list("news"), make_list("events")))
    return "reader@example.net"


def fresh(email: str) -> Subscriber:
    db.session.commit()
    db.session.expire_all()
    return db.session.scalars(select(Subscriber).where(Subscriber.email == email)).one()


def test_a_raw_dsn_is_classified_and_recorded(api: Api, reader: str) -> None:
    response = post_raw(api, dsn(reader))

    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json() == {"kind": "hard", "kept": False}
    assert fresh(reader).status is SubscriberStatus.BLOCKLISTED
    [event] = policy.events_of(fresh(reader).id)
    assert event.source is BounceSource.API


def test_a_raw_message_nobody_can_read_is_kept(api: Api) -> None:
    response = post_raw(api, unreadable())
    assert response.status_code == 202
    assert response.get_json() == {"kind": "ignored", "kept": True}
    [kept] = policy.unread()
    assert kept.source is BounceSource.API


def test_json_reports_apply_the_policy(api: Api, reader: str) -> None:
    response = api.post("/bounces", json={"email": "Reader@Example.net", "kind": "complaint",
                                          "reason": "marked as spam"})  # fmt: skip
    assert response.status_code == 202
    assert response.get_json() == {"kind": "complaint", "kept": False}
    subscriber = fresh(reader)
    assert {s.status for s in subscriber.subscriptions} == {SubscriptionStatus.UNSUBSCRIBED}
    [event] = policy.events_of(subscriber.id)
    assert (event.kind, event.reason) == (BounceKind.COMPLAINT, "marked as spam")


def test_the_answer_is_the_same_for_known_and_unknown_addresses(api: Api, reader: str) -> None:
    known = api.post("/bounces", json={"email": reader, "kind": "soft"})
    unknown = api.post("/bounces", json={"email": "stranger@example.net", "kind": "soft"})
    assert (known.status_code, known.get_json()) == (unknown.status_code, unknown.get_json())
    known_raw = post_raw(api, dsn(reader))
    unknown_raw = post_raw(api, dsn("stranger@example.net"))
    assert (known_raw.status_code, known_raw.get_json()) == (
        unknown_raw.status_code, unknown_raw.get_json()
    )
    assert db.session.scalar(
        select(Subscriber).where(Subscriber.email == "stranger@example.net")
    ) is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "reader@example.net"}, "kind"),
        ({"email": "reader@example.net", "kind": "bounced"}, "kind"),
        ({"kind": "hard"}, "email"),
        ({"email": "not an address", "kind": "hard"}, "email"),
        ({"email": "reader@example.net", "kind": "hard", "reason": "x" * 1001}, "reason"),
        ({"email": "reader@example.net", "kind": "hard", "extra": 1}, "extra"),
    ],
)
def test_bad_json_is_refused_naming_the_field(
    api: Api, reader: str, body: dict[str, object], field: str
) -> None:
    assert_error(api.post("/bounces", json=body), 422, field)
    assert fresh(reader).status is SubscriberStatus.ACTIVE


def test_other_bodies_are_refused(api: Api, app: Flask) -> None:
    assert_error(post_raw(api, "hello", "text/plain"), 415, None)
    assert_error(post_raw(api, b"  "), 422, None)
    too_large = b"x" * (policy.MAX_MESSAGE_BYTES + 1)
    assert_error(post_raw(api, too_large), 413, None)
    assert policy.unread() == []


def test_only_admins_tokens_may_report_bounces(app: Flask, client: FlaskClient) -> None:
    create_user("writer@example.org", "a long enough password 123", role=Role.EDITOR)
    editor = Api(client, create_api_token("writer@example.org"))
    assert_error(editor.post("/bounces", json={"email": "a@example.net", "kind": "hard"}),
                 403, None)  # fmt: skip
    assert client.post(f"{API}/bounces", json={"email": "a@example.net", "kind": "hard"}) \
        .status_code == 401


def test_the_openapi_document_describes_the_call(api: Api) -> None:
    document = api.get("/openapi.json").get_json()
    operation = document["paths"]["/bounces"]["post"]
    content = operation["requestBody"]["content"]
    assert set(content) == {"message/rfc822", "application/json"}
    assert "202" in operation["responses"]
    schema = document["components"]["schemas"]["BounceReport"]
    assert schema["properties"]["kind"]["enum"] == ["hard", "soft", "complaint"]
