"""POST /subscribers answers a known address as it answers a new one, so that a token that
may only write cannot find out who is on file; one that may read gets the subscriber."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from newsletter.audience.models import OptIn
from newsletter.auth import services, tokens
from newsletter.auth.models import User
from tests.factories import make_list, make_subscriber
from tests.web.api_client import Api


@pytest.fixture
def robot(app: Flask) -> User:
    return services.create_user("robot@example.org", "a long enough password 123")


def api_with(client: FlaskClient, robot: User, *granted: str) -> Api:
    return Api(client, tokens.create_token(robot, scope_names=granted).secret)


def test_a_write_only_token_gets_the_same_answer_for_known_and_new_addresses(
    client: FlaskClient, robot: User
) -> None:
    weekly = make_list("weekly", optin=OptIn.SINGLE)
    make_list("alerts", optin=OptIn.SINGLE)
    make_subscriber("ada@example.com", lists=(weekly,))
    writer = api_with(client, robot, "write")

    known = writer.post("/subscribers", {"email": "ADA@example.com", "lists": ["alerts"]})
    new = writer.post("/subscribers", {"email": "Bob@example.com", "lists": ["alerts"]})

    assert known.status_code == new.status_code == 202
    assert known.headers.get("Location") is None and new.headers.get("Location") is None
    assert known.get_json() == {"accepted": True, "email": "ADA@example.com", "lists": ["alerts"]}
    assert new.get_json() == {"accepted": True, "email": "Bob@example.com", "lists": ["alerts"]}
    # The subscriptions were made all the same: a reader sees them.
    reader = api_with(client, robot, "read")
    found = reader.get("/subscribers", query_string={"email": "ada@example.com"}).get_json()
    assert [s["list"] for s in found["items"][0]["subscriptions"]] == ["alerts", "weekly"]
    found = reader.get("/subscribers", query_string={"email": "bob@example.com"}).get_json()
    assert [s["list"] for s in found["items"][0]["subscriptions"]] == ["alerts"]


def test_a_token_that_may_read_gets_the_subscriber_with_201_known_or_new(
    client: FlaskClient, robot: User
) -> None:
    weekly = make_list("weekly", optin=OptIn.SINGLE)
    make_list("alerts", optin=OptIn.SINGLE)
    ada = make_subscriber("ada@example.com", lists=(weekly,))
    both = api_with(client, robot, "read", "write")

    known = both.post("/subscribers", {"email": "ada@example.com", "lists": ["alerts"]})
    new = both.post("/subscribers", {"email": "bob@example.com", "lists": ["alerts"]})

    assert known.status_code == new.status_code == 201
    assert known.get_json()["id"] == ada.id
    assert known.get_json()["status"] == "active"
    assert [s["list"] for s in known.get_json()["subscriptions"]] == ["alerts", "weekly"]
    assert new.get_json()["id"] != ada.id
    assert [s["list"] for s in new.get_json()["subscriptions"]] == ["alerts"]
    assert new.headers["Location"].endswith(f"/api/v1/subscribers/{new.get_json()['id']}")
