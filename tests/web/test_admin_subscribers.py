"""One subscriber's page in the admin, and every change made there; lists edited and archived.

Admins only (the people on the lists may be at risk); every change is a POST with the page's
CSRF token and lands in the audit log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from newsletter.audience.models import (
    ConsentSource,
    MailingList,
    OptIn,
    Subscriber,
    SubscriberStatus,
    SubscriptionStatus,
)
from newsletter.audit import AuditEvent
from newsletter.auth.models import Role
from newsletter.auth.services import create_user
from newsletter.content.models import IssueStatus
from newsletter.delivery.models import Delivery, DeliveryStatus
from newsletter.extensions import db
from tests.factories import make_issue, make_list, make_statement, make_subscriber
from tests.smtp import CapturingSMTPServer
from tests.web.admin_browser import PASSWORD, as_browser, log_in, logged_in_admin, token_for


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A browser logged in as an admin."""
    return logged_in_admin(app)


@pytest.fixture
def ada(app: Flask) -> Subscriber:
    news = make_list("news", name="Movement News")
    subscriber = make_subscriber(
        "ada@example.org", name="Ada Lovelace", lists=(news,),
        attributes={"city": "Madrid", "_pending_name": "secret"},
    )
    subscriber.subscriptions[0].consent_ip = "192.0.2.7"
    db.session.commit()
    return subscriber


def fresh(subscriber_id: int) -> Subscriber | None:
    db.session.expire_all()
    return db.session.get(Subscriber, subscriber_id)


def page_of(client: FlaskClient, subscriber_id: int) -> str:
    response = client.get(f"/admin/subscribers/{subscriber_id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_the_page_shows_subscriptions_consent_attributes_and_deliveries(
    client: FlaskClient, ada: Subscriber
) -> None:
    statement = make_statement(title="Autumn")
    issue = make_issue((statement,), tuple(s.list for s in ada.subscriptions),
                       subject="Autumn statement", status=IssueStatus.SENT)
    db.session.add(Delivery(issue_id=issue.id, subscriber_id=ada.id, status=DeliveryStatus.SENT,
                            last_reply="250 2.0.0 Ok"))
    db.session.commit()
    page = page_of(client, ada.id)
    assert "ada@example.org" in page and "Ada Lovelace" in page
    assert "Movement News" in page and "badge-confirmed" in page
    assert "192.0.2.7" in page and ">admin<" in page  # consent: from where, how
    assert "Madrid" in page
    assert "_pending_name" not in page and "secret" not in page  # the tool's own keys
    assert "Autumn statement" in page and "250 2.0.0 Ok" in page
    listing = client.get("/admin/subscribers").get_data(as_text=True)
    assert f'href="/admin/subscribers/{ada.id}"' in listing


def test_an_unknown_subscriber_is_a_404(client: FlaskClient) -> None:
    assert client.get("/admin/subscribers/999").status_code == 404


def test_edit_name_and_attributes_keeps_the_tools_own(
    client: FlaskClient, ada: Subscriber
) -> None:
    path = f"/admin/subscribers/{ada.id}"
    response = client.post(f"{path}/edit", data={
        "csrf_token": token_for(client, path), "name": "Augusta Ada King",
        "attributes": json.dumps({"city": "London", "born": 1815}),
    })
    assert response.status_code == 302
    changed = fresh(ada.id)
    assert changed is not None and changed.name == "Augusta Ada King"
    assert changed.attributes == {"city": "London", "born": 1815, "_pending_name": "secret"}
    event = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert event is not None and event.action == "admin.subscriber_edit"


@pytest.mark.parametrize(
    ("attributes", "says"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"_pending_name": "x"}', "cannot start with _"),
    ],
)
def test_bad_attributes_are_refused_beside_the_field(
    client: FlaskClient, ada: Subscriber, attributes: str, says: str
) -> None:
    path = f"/admin/subscribers/{ada.id}"
    response = client.post(f"{path}/edit", data={
        "csrf_token": token_for(client, path), "name": "Ada", "attributes": attributes,
    })
    assert response.status_code == 422
    assert says in response.get_data(as_text=True)
    unchanged = fresh(ada.id)
    assert unchanged is not None and unchanged.attributes["city"] == "Madrid"


def test_a_change_without_the_csrf_token_is_refused(client: FlaskClient, ada: Subscriber) -> None:
    path = f"/admin/subscribers/{ada.id}"
    assert client.post(f"{path}/blocklist").status_code == 400
    assert client.post(f"{path}/edit", data={"name": "X"}).status_code == 400
    unchanged = fresh(ada.id)
    assert unchanged is not None and unchanged.status is SubscriberStatus.ACTIVE
    assert unchanged.name == "Ada Lovelace"


def test_blocklist_and_unblocklist(client: FlaskClient, ada: Subscriber) -> None:
    path = f"/admin/subscribers/{ada.id}"
    assert client.post(f"{path}/blocklist",
                       data={"csrf_token": token_for(client, path)}).status_code == 302
    blocked = fresh(ada.id)
    assert blocked is not None and blocked.status is SubscriberStatus.BLOCKLISTED
    assert "Unblocklist" in page_of(client, ada.id)
    found = client.get("/admin/subscribers", query_string={"status": "blocklisted"})
    assert "ada@example.org" in found.get_data(as_text=True)
    assert client.post(f"{path}/unblocklist",
                       data={"csrf_token": token_for(client, path)}).status_code == 302
    back = fresh(ada.id)
    assert back is not None and back.status is SubscriberStatus.ACTIVE


def test_add_to_a_list_confirmed_or_with_a_confirmation_mail(
    client: FlaskClient, ada: Subscriber, run_jobs: Callable[[], None],
    mailbox: CapturingSMTPServer,
) -> None:
    make_list("alerts", name="Alerts")
    make_list("weekly", name="Weekly")
    ada_id = ada.id
    path = f"/admin/subscribers/{ada_id}"
    client.post(f"{path}/subscriptions", data={
        "csrf_token": token_for(client, path), "list_slug": "alerts", "status": "confirmed"})
    client.post(f"{path}/subscriptions", data={
        "csrf_token": token_for(client, path), "list_slug": "weekly", "status": "unconfirmed"})
    run_jobs()
    changed = fresh(ada_id)
    assert changed is not None
    by_list = {s.list.slug: s for s in changed.subscriptions}
    assert by_list["alerts"].status is SubscriptionStatus.CONFIRMED
    assert by_list["alerts"].consent_source is ConsentSource.ADMIN
    assert by_list["weekly"].status is SubscriptionStatus.UNCONFIRMED
    assert len(mailbox.to("ada@example.org")) == 1  # the confirmation for weekly only


def test_unsubscribe_confirm_and_remove_one_subscription(
    client: FlaskClient, ada: Subscriber
) -> None:
    path = f"/admin/subscribers/{ada.id}"
    list_id = ada.subscriptions[0].list_id

    def act(action: str) -> None:
        response = client.post(f"{path}/subscriptions/{list_id}",
                               data={"csrf_token": token_for(client, path), "action": action})
        assert response.status_code == 302

    act("unsubscribe")
    subscriber = fresh(ada.id)
    assert subscriber is not None
    assert subscriber.subscriptions[0].status is SubscriptionStatus.UNSUBSCRIBED
    assert subscriber.subscriptions[0].unsubscribed_at is not None
    act("confirm")
    subscriber = fresh(ada.id)
    assert subscriber is not None
    assert subscriber.subscriptions[0].status is SubscriptionStatus.CONFIRMED
    act("remove")
    subscriber = fresh(ada.id)
    assert subscriber is not None and subscriber.subscriptions == []
    assert "On no list" in page_of(client, ada.id)


def test_delete_asks_first_then_deletes_with_deliveries(
    client: FlaskClient, ada: Subscriber
) -> None:
    statement = make_statement()
    issue = make_issue((statement,), tuple(s.list for s in ada.subscriptions))
    db.session.add(Delivery(issue_id=issue.id, subscriber_id=ada.id))
    db.session.commit()
    path = f"/admin/subscribers/{ada.id}/delete"
    ask = client.get(path)
    assert ask.status_code == 200 and "cannot be undone" in ask.get_data(as_text=True)
    unticked = client.post(path, data={"csrf_token": token_for(client, path)})
    assert unticked.status_code == 302 and fresh(ada.id) is not None
    done = client.post(path, data={"csrf_token": token_for(client, path), "confirm": "yes"})
    assert done.status_code == 302 and done.headers["Location"].endswith("/admin/subscribers")
    assert fresh(ada.id) is None
    assert db.session.scalars(select(Delivery)).all() == []


def test_adding_a_subscriber_asks_the_gate_first(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.audience import gate

    make_list("news", optin=OptIn.SINGLE)
    monkeypatch.setattr(gate, "refused", lambda emails, *, via: {
        e.lower(): "this address was erased at its owner's request" for e in emails})
    response = client.post("/admin/subscribers/new", data={
        "csrf_token": token_for(client, "/admin/subscribers/new"),
        "email": "Gone@example.org", "lists": ["news"]})
    assert response.status_code == 422
    assert "erased at its owner" in response.get_data(as_text=True)
    assert db.session.scalar(select(Subscriber)) is None


def test_viewers_and_editors_cannot_open_or_change_a_subscriber(
    app: Flask, ada: Subscriber
) -> None:
    for role in (Role.VIEWER, Role.EDITOR):
        email = f"{role.value}@example.org"
        create_user(email, PASSWORD, role=role)
        browser = as_browser(app.test_client())
        assert log_in(browser, email=email).status_code == 302
        assert browser.get(f"/admin/subscribers/{ada.id}").status_code == 403
        token = token_for(browser, "/admin/")
        refused = browser.post(f"/admin/subscribers/{ada.id}/blocklist",
                               data={"csrf_token": token})
        assert refused.status_code == 403
        assert browser.get("/admin/lists/1/edit").status_code == 403
    unchanged = fresh(ada.id)
    assert unchanged is not None and unchanged.status is SubscriberStatus.ACTIVE


# --- lists -----------------------------------------------------------------------------------


def test_edit_a_list(client: FlaskClient) -> None:
    lst = make_list("news", name="News", optin=OptIn.DOUBLE, public=True)
    path = f"/admin/lists/{lst.id}/edit"
    assert "News" in client.get(path).get_data(as_text=True)
    response = client.post(path, data={
        "csrf_token": token_for(client, path), "name": "Movement News",
        "description": "Weekly", "optin": "single"})  # public unticked
    assert response.status_code == 302
    db.session.expire_all()
    changed = db.session.get(MailingList, lst.id)
    assert changed is not None
    assert (changed.slug, changed.name, changed.description, changed.optin, changed.public) == (
        "news", "Movement News", "Weekly", OptIn.SINGLE, False)
    blank = client.post(path, data={"csrf_token": token_for(client, path), "name": " ",
                                    "optin": "single"})
    assert blank.status_code == 422


def test_an_archived_list_leaves_the_signup_form_and_the_compose_picker(
    client: FlaskClient,
) -> None:
    old = make_list("old-news", name="Old News")
    make_list("news", name="Current News")
    path = f"/admin/lists/{old.id}/edit"
    response = client.post(f"/admin/lists/{old.id}/archive",
                           data={"csrf_token": token_for(client, path), "archived": "1"})
    assert response.status_code == 302
    signup = client.get("/subscribe").get_data(as_text=True)
    assert 'value="news"' in signup and 'value="old-news"' not in signup
    compose = client.get("/admin/issues/new").get_data(as_text=True)
    assert 'value="news"' in compose and 'value="old-news"' not in compose
    lists = client.get("/admin/lists").get_data(as_text=True)
    assert "<code>news</code>" in lists and "<code>old-news</code>" not in lists
    archived = client.get("/admin/lists", query_string={"archived": "1"}).get_data(as_text=True)
    assert "Old News" in archived and "Current News" not in archived
    # Posting the signup form for it anyway subscribes nobody.
    from tests.helpers import csrf_token_from

    token = csrf_token_from(client.get("/subscribe").get_data(as_text=True))
    client.post("/subscribe", data={"csrf_token": token, "email": "x@example.org",
                                    "lists": ["old-news"]})
    assert db.session.scalar(select(Subscriber)) is None

    client.post(f"/admin/lists/{old.id}/archive",
                data={"csrf_token": token_for(client, path), "archived": "0"})
    assert 'value="old-news"' in client.get("/subscribe").get_data(as_text=True)


def test_an_issue_on_an_archived_list_keeps_it_in_its_picker(client: FlaskClient) -> None:
    old = make_list("old-news", name="Old News")
    issue = make_issue((make_statement(),), (old,))
    client.post(f"/admin/lists/{old.id}/archive", data={
        "csrf_token": token_for(client, f"/admin/lists/{old.id}/edit"), "archived": "1"})
    edit = client.get(f"/admin/issues/{issue.id}/edit").get_data(as_text=True)
    assert re.search(r'<input checked[^>]*value="old-news"', edit)
