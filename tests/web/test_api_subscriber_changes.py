"""The API's changes to one subscriber and one list: GET, PATCH and DELETE /subscribers/{id},
PATCH /lists/{id}; their validation errors, the role and scope they need."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from newsletter.audience.models import (
    ConsentSource,
    MailingList,
    OptIn,
    Subscriber,
    SubscriberStatus,
)
from newsletter.auth import tokens
from newsletter.auth.models import Role
from newsletter.auth.services import create_api_token, create_user
from newsletter.extensions import db
from tests.factories import make_list, make_subscriber
from tests.smtp import CapturingSMTPServer
from tests.web.api_client import Api, assert_error


@pytest.fixture
def api(client: FlaskClient, app: Flask) -> Api:
    create_user("robot@example.org", "a long enough password 123")
    return Api(client, create_api_token("robot@example.org"))


@pytest.fixture
def ada(app: Flask) -> int:
    news = make_list("news", name="News")
    make_list("alerts", name="Alerts")
    subscriber = make_subscriber(
        "ada@example.org", name="Ada", lists=(news,),
        attributes={"city": "Madrid", "tier": "gold", "_pending_name": "secret"},
    )
    return subscriber.id


def stored(subscriber_id: int) -> Subscriber | None:
    db.session.expire_all()
    return db.session.get(Subscriber, subscriber_id)


def test_get_one_subscriber_without_the_tools_own_attributes(api: Api, ada: int) -> None:
    response = api.get(f"/subscribers/{ada}")
    assert response.status_code == 200
    body = response.get_json()
    assert body["email"] == "ada@example.org"
    assert body["attributes"] == {"city": "Madrid", "tier": "gold"}
    assert [(s["list"], s["status"]) for s in body["subscriptions"]] == [("news", "confirmed")]
    assert_error(api.get("/subscribers/999"), 404, None)


def test_patch_merges_attributes_and_sets_the_name(api: Api, ada: int) -> None:
    response = api.call("PATCH", f"/subscribers/{ada}", json={
        "name": "Ada King", "attributes": {"city": "London", "tier": None, "born": 1815}})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["name"] == "Ada King"
    assert body["attributes"] == {"city": "London", "born": 1815}
    subscriber = stored(ada)
    assert subscriber is not None and subscriber.attributes["_pending_name"] == "secret"


def test_patch_can_replace_the_attributes_whole(api: Api, ada: int) -> None:
    response = api.call("PATCH", f"/subscribers/{ada}", json={
        "attributes": {"member": True}, "attributes_mode": "replace"})
    assert response.status_code == 200
    assert response.get_json()["attributes"] == {"member": True}
    subscriber = stored(ada)
    assert subscriber is not None
    assert subscriber.attributes == {"member": True, "_pending_name": "secret"}


def test_patch_changes_subscriptions_and_mails_a_confirmation_for_unconfirmed(
    api: Api, ada: int, run_jobs: Callable[[], None], mailbox: CapturingSMTPServer
) -> None:
    response = api.call("PATCH", f"/subscribers/{ada}", json={"subscriptions": [
        {"list": "news", "status": "unsubscribed"},
        {"list": "alerts", "status": "unconfirmed"},
    ]})
    assert response.status_code == 200, response.get_data(as_text=True)
    statuses = {s["list"]: s["status"] for s in response.get_json()["subscriptions"]}
    assert statuses == {"news": "unsubscribed", "alerts": "unconfirmed"}
    run_jobs()
    assert len(mailbox.to("ada@example.org")) == 1
    subscriber = stored(ada)
    assert subscriber is not None
    alerts = next(s for s in subscriber.subscriptions if s.list.slug == "alerts")
    assert alerts.consent_source is ConsentSource.API
    confirmed = api.call("PATCH", f"/subscribers/{ada}", json={
        "subscriptions": [{"list": "alerts", "status": "confirmed"}]})
    assert {s["list"]: s["status"] for s in confirmed.get_json()["subscriptions"]}["alerts"] \
        == "confirmed"


def test_patch_blocklists_and_unblocklists(api: Api, ada: int) -> None:
    blocked = api.call("PATCH", f"/subscribers/{ada}", json={"status": "blocklisted"})
    assert blocked.status_code == 200 and blocked.get_json()["status"] == "blocklisted"
    subscriber = stored(ada)
    assert subscriber is not None and subscriber.status is SubscriberStatus.BLOCKLISTED
    back = api.call("PATCH", f"/subscribers/{ada}", json={"status": "active"})
    assert back.get_json()["status"] == "active"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"attributes": {"_pending_name": "x"}}, 422, "attributes"),
        ({"attributes": ["not", "an", "object"]}, 422, "attributes"),
        ({"attributes": {"city": "x"}, "attributes_mode": "sometimes"}, 422, "attributes_mode"),
        ({"status": "deleted"}, 422, "status"),
        ({"name": "x" * 201}, 422, "name"),
        ({"subscriptions": [{"list": "nope", "status": "confirmed"}]}, 404, "subscriptions"),
        ({"subscriptions": [{"list": "news", "status": "maybe"}]}, 422, "subscriptions"),
        ({"subscriptions": [{"status": "confirmed"}]}, 422, "subscriptions"),
        ({"email": "new@example.org"}, 422, "email"),  # the address is not changed here
    ],
)
def test_patch_refuses_what_does_not_fit_and_changes_nothing(
    api: Api, ada: int, body: dict[str, object], status: int, field: str
) -> None:
    assert_error(api.call("PATCH", f"/subscribers/{ada}", json={"name": "Changed", **body}),
                 status, field)
    subscriber = stored(ada)
    assert subscriber is not None and subscriber.name == "Ada"
    assert subscriber.attributes["city"] == "Madrid"


def test_patch_and_delete_an_unknown_subscriber_are_404(api: Api) -> None:
    assert_error(api.call("PATCH", "/subscribers/999", json={"name": "x"}), 404, None)
    assert_error(api.call("DELETE", "/subscribers/999"), 404, None)


def test_delete_answers_204_and_the_subscriber_is_gone(api: Api, ada: int) -> None:
    response = api.call("DELETE", f"/subscribers/{ada}")
    assert response.status_code == 204 and response.get_data() == b""
    assert stored(ada) is None
    assert_error(api.get(f"/subscribers/{ada}"), 404, None)


def test_creating_a_subscriber_the_gate_refuses_is_a_422_saying_why(
    api: Api, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.audience import gate

    make_list("news")
    monkeypatch.setattr(gate, "refused", lambda emails, *, via: {
        e.lower(): f"erased at its owner's request ({via})" for e in emails})
    message = assert_error(
        api.post("/subscribers", json={"email": "Gone@example.org", "lists": ["news"]}),
        422, "email")
    assert "erased at its owner's request (api)" in message
    assert db.session.query(Subscriber).count() == 0


# --- lists -----------------------------------------------------------------------------------


def test_patch_a_list_and_archive_it(api: Api, app: Flask) -> None:
    lst = make_list("news", name="News", optin=OptIn.DOUBLE)
    response = api.call("PATCH", f"/lists/{lst.id}", json={
        "name": "Movement News", "description": "Weekly", "optin": "single", "public": False})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["slug"], body["name"], body["optin"], body["public"], body["archived_at"]) == (
        "news", "Movement News", "single", False, None)
    archived = api.call("PATCH", f"/lists/{lst.id}", json={"archived": True, "public": True})
    assert archived.get_json()["archived_at"] is not None
    assert "news" not in api.client.get("/subscribe").get_data(as_text=True)
    listed = api.get("/lists").get_json()["items"]
    assert [item["archived_at"] is not None for item in listed] == [True]  # still listed
    back = api.call("PATCH", f"/lists/{lst.id}", json={"archived": False})
    assert back.get_json()["archived_at"] is None
    db.session.expire_all()
    stored_list = db.session.get(MailingList, lst.id)
    assert stored_list is not None and stored_list.archived_at is None


@pytest.mark.parametrize(
    ("body", "field"),
    [({"name": ""}, "name"), ({"archived": "yes"}, "archived"), ({"slug": "other"}, "slug"),
     ({"optin": "triple"}, "optin")],
)
def test_patch_a_list_refuses_what_does_not_fit(
    api: Api, app: Flask, body: dict[str, object], field: str
) -> None:
    lst = make_list("news", name="News")
    assert_error(api.call("PATCH", f"/lists/{lst.id}", json=body), 422, field)
    assert_error(api.call("PATCH", "/lists/999", json={"name": "x"}), 404, None)


# --- who may ---------------------------------------------------------------------------------


def test_editors_and_viewers_get_a_403_and_change_nothing(
    client: FlaskClient, ada: int
) -> None:
    for role in (Role.EDITOR, Role.VIEWER):
        email = f"{role.value}-robot@example.org"
        create_user(email, "a long enough password 123", role=role)
        api = Api(client, create_api_token(email))
        assert_error(api.get(f"/subscribers/{ada}"), 403, None)
        assert_error(api.call("PATCH", f"/subscribers/{ada}", json={"name": "x"}), 403, None)
        assert_error(api.call("DELETE", f"/subscribers/{ada}"), 403, None)
        assert_error(api.call("PATCH", "/lists/1", json={"name": "x"}), 403, None)
    subscriber = stored(ada)
    assert subscriber is not None and subscriber.name == "Ada"


def test_a_read_token_reads_but_cannot_patch_or_delete(client: FlaskClient, ada: int) -> None:
    robot = create_user("reader-robot@example.org", "a long enough password 123")
    api = Api(client, tokens.create_token(robot, scope_names=["read"]).secret)
    assert api.get(f"/subscribers/{ada}").status_code == 200
    assert_error(api.call("PATCH", f"/subscribers/{ada}", json={"name": "x"}), 403,
                 "Authorization")
    assert_error(api.call("DELETE", f"/subscribers/{ada}"), 403, "Authorization")
    assert_error(api.call("PATCH", "/lists/1", json={"name": "x"}), 403, "Authorization")
    assert stored(ada) is not None
