"""Revoking one person's links in mail, through each door: the subscriber's admin page, the
API and the ``newsletter subscribers revoke-links`` command. Links mailed before open
nothing afterwards (as any invalid link); links made after work."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from newsletter.audience.models import Subscriber, SubscriptionStatus
from newsletter.audience.tokens import manage_url, unsubscribe_url
from newsletter.audit import AuditEvent
from newsletter.auth import services, tokens
from newsletter.auth.models import Role
from newsletter.extensions import db
from tests.factories import make_list, make_subscriber
from tests.web.admin_browser import log_in, logged_in_admin, token_for
from tests.web.api_client import Api, assert_error

Links = tuple[str, str]


def links_of(subscriber_id: int, list_id: int) -> Links:
    """The manage and unsubscribe paths a mail sent now would carry."""
    subscriber = db.session.get(Subscriber, subscriber_id)
    assert subscriber is not None
    db.session.refresh(subscriber)
    version = subscriber.token_version
    return (
        urlsplit(manage_url(subscriber_id, version=version)).path,
        urlsplit(unsubscribe_url(subscriber_id, list_id, version=version)).path,
    )


def assert_open_nothing(app: Flask, links: Links) -> None:
    """Each link answers as a forged one does, and unsubscribes nobody by one click."""
    client = app.test_client()
    forged = client.get("/manage/not-a-token")
    for path in links:
        response = client.get(path)
        assert response.status_code == forged.status_code == 400
        assert "no longer valid" in response.get_data(as_text=True)
    one_click = client.post(
        links[1], data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert one_click.status_code == 400


def assert_work(app: Flask, links: Links) -> None:
    client = app.test_client()
    manage, unsubscribe = links
    assert client.get(manage).status_code == 200
    assert client.get(unsubscribe).status_code == 200


def subscription_status(subscriber_id: int) -> SubscriptionStatus:
    db.session.expire_all()
    subscriber = db.session.get(Subscriber, subscriber_id)
    assert subscriber is not None
    return subscriber.subscriptions[0].status


def audit_rows(action: str) -> list[AuditEvent]:
    db.session.remove()
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# --- the admin page ----------------------------------------------------------------------


def test_an_admin_revokes_a_person_s_links_on_their_page(app: Flask) -> None:
    news = make_list("news")
    ada = make_subscriber("ada@example.org", lists=(news,))
    ada_id, news_id = ada.id, news.id
    before = links_of(ada_id, news_id)
    admin = logged_in_admin(app)

    shown = admin.get(f"/admin/subscribers/{ada_id}").get_data(as_text=True)
    assert "Revoke this person’s links" in shown
    assert "links in mail already sent stop working" in shown
    response = admin.post(
        f"/admin/subscribers/{ada_id}/revoke-links",
        data={"csrf_token": token_for(admin, f"/admin/subscribers/{ada_id}")},
    )
    assert response.status_code == 302
    assert "Their links are revoked" in admin.get(response.location).get_data(as_text=True)

    assert_open_nothing(app, before)
    assert subscription_status(ada_id) is SubscriptionStatus.CONFIRMED
    assert_work(app, links_of(ada_id, news_id))
    [row] = audit_rows("admin.subscriber_revoke_links")
    assert (row.actor, row.target) == ("editor@example.org", f"subscriber_id={ada_id}")


def test_revoking_on_the_admin_page_needs_the_csrf_token(app: Flask) -> None:
    news = make_list("news")
    ada = make_subscriber("ada@example.org", lists=(news,))
    before = links_of(ada.id, news.id)
    admin = logged_in_admin(app)
    assert admin.post(f"/admin/subscribers/{ada.id}/revoke-links", data={}).status_code == 400
    assert_work(app, before)
    assert audit_rows("admin.subscriber_revoke_links") == []


def test_an_editor_may_not_revoke_anyone_s_links(app: Flask) -> None:
    news = make_list("news")
    ada = make_subscriber("ada@example.org", lists=(news,))
    before = links_of(ada.id, news.id)
    services.create_user("ed@example.org", "an editor's long password", role=Role.EDITOR)
    editor = app.test_client()
    assert log_in(editor, "ed@example.org", "an editor's long password").status_code == 302
    csrf = token_for(editor, "/admin/profile")
    response = editor.post(f"/admin/subscribers/{ada.id}/revoke-links", data={"csrf_token": csrf})
    assert response.status_code == 403
    assert_work(app, before)


# --- the API -----------------------------------------------------------------------------


def test_the_api_revokes_a_person_s_links_with_the_write_scope(app: Flask) -> None:
    news = make_list("news")
    ada = make_subscriber("ada@example.org", lists=(news,))
    ada_id, news_id = ada.id, news.id
    before = links_of(ada_id, news_id)
    owner = services.create_user("grace@example.org", "a long admin password")
    writer = Api(app.test_client(), tokens.create_token(owner, scope_names=["write"]).secret)
    reader = Api(app.test_client(), tokens.create_token(owner, scope_names=["read"]).secret)

    assert_error(reader.post(f"/subscribers/{ada_id}/revoke-links"), 403, "Authorization")
    assert_work(app, before)

    response = writer.post(f"/subscribers/{ada_id}/revoke-links")
    assert response.status_code == 204 and response.get_data() == b""
    assert_open_nothing(app, before)
    assert_work(app, links_of(ada_id, news_id))
    [row] = audit_rows("api.revoke_subscriber_links")
    assert (row.actor, row.target) == ("grace@example.org", f"subscriber_id={ada_id}")

    assert_error(writer.post("/subscribers/999999/revoke-links"), 404, None)


def test_an_editor_s_token_may_not_revoke_links(app: Flask) -> None:
    news = make_list("news")
    ada = make_subscriber("ada@example.org", lists=(news,))
    before = links_of(ada.id, news.id)
    editor = services.create_user("ed@example.org", "an editor's long password",
                                  role=Role.EDITOR)
    api = Api(app.test_client(), tokens.create_token(editor).secret)
    assert "needs an admin" in assert_error(
        api.post(f"/subscribers/{ada.id}/revoke-links"), 403, None
    )
    assert_work(app, before)


def test_the_revoke_call_is_in_the_openapi_document(app: Flask) -> None:
    owner = services.create_user("grace@example.org", "a long admin password")
    api = Api(app.test_client(), tokens.create_token(owner, scope_names=["read"]).secret)
    paths = api.get("/openapi.json").get_json()["paths"]
    call = paths["/subscribers/{subscriber_id}/revoke-links"]["post"]
    assert set(call["responses"]) >= {"204", "404"}


# --- the command -------------------------------------------------------------------------


@pytest.fixture
def revoke(runner: FlaskCliRunner) -> Callable[[str], tuple[int, str]]:
    def run(email: str) -> tuple[int, str]:
        result = runner.invoke(args=["subscribers", "revoke-links", email])
        return result.exit_code, result.output

    return run


def test_the_command_revokes_a_person_s_links(
    app: Flask, revoke: Callable[[str], tuple[int, str]]
) -> None:
    news = make_list("news")
    ada = make_subscriber("ada@example.org", lists=(news,))
    ada_id, news_id = ada.id, news.id
    before = links_of(ada_id, news_id)

    code, output = revoke("ADA@example.org")  # any case, as everywhere
    assert code == 0, output
    assert "Revoked the links in mail sent to ada@example.org" in output
    assert_open_nothing(app, before)
    assert_work(app, links_of(ada_id, news_id))
    [row] = audit_rows("cli.subscribers_revoke_links")
    assert (row.actor, row.target) == ("cli", f"subscriber_id={ada_id}")
    assert "ada@example.org" not in json.dumps([row.target, row.detail])


def test_the_command_says_plainly_when_nobody_has_the_address(
    app: Flask, revoke: Callable[[str], tuple[int, str]]
) -> None:
    code, output = revoke("nobody@example.org")
    assert code == 1
    assert "no subscriber 'nobody@example.org'" in output
    assert audit_rows("cli.subscribers_revoke_links") == []
