"""The admin's Bounces page (policy, unread messages, latest events) and the bounce events
and Reinstate button of a subscriber's page. Admins only; every change needs the CSRF token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from newsletter.audience.models import Subscriber, SubscriberStatus
from newsletter.auth.models import Role
from newsletter.auth.services import create_user
from newsletter.delivery.bounces import policy, settings
from newsletter.delivery.bounces.models import BounceSource
from newsletter.extensions import db
from tests.delivery.bounce_samples import unreadable
from tests.factories import make_list, make_subscriber
from tests.web.admin_browser import PASSWORD, as_browser, log_in, logged_in_admin, token_for

DAY1 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return logged_in_admin(app)


@pytest.fixture
def reader(app: Flask) -> int:
    subscriber = make_subscriber("reader@example.net", lists=(make_list("news"),))
    return int(subscriber.id)


def fresh(subscriber_id: int) -> Subscriber:
    db.session.commit()
    db.session.expire_all()
    found = db.session.get(Subscriber, subscriber_id)
    assert found is not None
    return found


def test_the_page_shows_the_policy_and_saves_it(client: FlaskClient) -> None:
    page = client.get("/admin/bounces").get_data(as_text=True)
    assert "after <strong>5</strong> soft bounces" in page
    assert "more than <strong>7</strong> days" in page

    saved = client.post("/admin/bounces", data={
        "csrf_token": token_for(client, "/admin/bounces"), "score_threshold": "3",
        "stale_days": "10"})  # fmt: skip
    assert saved.status_code == 302
    assert settings.current() == settings.Policy(3, 10)
    assert "after <strong>3</strong> soft bounces" in client.get("/admin/bounces").get_data(
        as_text=True
    )


def test_out_of_range_or_tokenless_policy_changes_are_refused(client: FlaskClient) -> None:
    refused = client.post("/admin/bounces", data={
        "csrf_token": token_for(client, "/admin/bounces"), "score_threshold": "0",
        "stale_days": "7"})  # fmt: skip
    assert refused.status_code == 422
    no_token = client.post("/admin/bounces", data={"score_threshold": "2", "stale_days": "7"})
    assert no_token.status_code == 400
    assert settings.current() == settings.Policy(5, 7)


def test_unread_messages_are_listed_read_and_classified_by_hand(
    client: FlaskClient, reader: int
) -> None:
    kept = policy.take_message(unreadable("Re: <b>your</b> letter"), BounceSource.LMTP)
    page = client.get("/admin/bounces").get_data(as_text=True)
    assert "Re: &lt;b&gt;your&lt;/b&gt; letter" in page
    path = f"/admin/bounces/unread/{kept.unread_id}"
    shown = client.get(path).get_data(as_text=True)
    assert "Please call me about this." in shown

    done = client.post(f"{path}/resolve", data={
        "csrf_token": token_for(client, path), "kind": "hard", "email": "reader@example.net"})
    assert done.status_code == 302
    assert fresh(reader).status is SubscriberStatus.BLOCKLISTED
    assert policy.unread() == []
    [event] = policy.events_of(reader)
    assert event.source is BounceSource.ADMIN
    assert "reader@example.net" in client.get("/admin/bounces").get_data(as_text=True)


def test_an_unread_message_can_be_dismissed(client: FlaskClient) -> None:
    kept = policy.take_message(unreadable(), BounceSource.LMTP)
    path = f"/admin/bounces/unread/{kept.unread_id}"
    client.post(f"{path}/resolve", data={"csrf_token": token_for(client, path),
                                         "kind": "dismiss"})  # fmt: skip
    assert policy.unread() == []
    assert "Nothing waiting." in client.get("/admin/bounces").get_data(as_text=True)


def test_the_subscriber_page_shows_events_and_reinstates(
    client: FlaskClient, reader: int
) -> None:
    issue_less_reason = "452 4.2.2 <reader@example.net> mailbox full"
    for day in range(5):
        policy.record(reader, "soft", issue_less_reason, BounceSource.IMPORT,
                      now=DAY1 + timedelta(days=day))  # fmt: skip
    path = f"/admin/subscribers/{reader}"
    page = client.get(path).get_data(as_text=True)
    assert "Bounces and complaints" in page
    assert page.count("mailbox full") == 5
    assert "Soft-bounce score: 5" in page
    assert "Reinstate" in page

    no_token = client.post(f"{path}/reinstate")
    assert no_token.status_code == 400
    assert fresh(reader).status is SubscriberStatus.BLOCKLISTED

    done = client.post(f"{path}/reinstate", data={"csrf_token": token_for(client, path)})
    assert done.status_code == 302
    subscriber = fresh(reader)
    assert (subscriber.status, subscriber.bounce_score) == (SubscriberStatus.ACTIVE, 0)
    assert "Soft-bounce score: 0" in client.get(path).get_data(as_text=True)


def test_editors_and_viewers_cannot_see_or_change_bounces(app: Flask, reader: int) -> None:
    policy.record(reader, "hard", "550", BounceSource.API)
    for role in (Role.VIEWER, Role.EDITOR):
        email = f"{role.value}@example.org"
        create_user(email, PASSWORD, role=role)
        browser = as_browser(app.test_client())
        assert log_in(browser, email=email).status_code == 302
        assert browser.get("/admin/bounces").status_code == 403
        token = token_for(browser, "/admin/")
        refused = browser.post(f"/admin/subscribers/{reader}/reinstate",
                               data={"csrf_token": token})  # fmt: skip
        assert refused.status_code == 403
        assert "Bounces" not in browser.get("/admin/").get_data(as_text=True)
    assert fresh(reader).status is SubscriberStatus.BLOCKLISTED
    assert db.session.scalar(select(Subscriber.id).where(Subscriber.id == reader)) == reader
