"""Admin pages for lists and subscribers: create a list, add, search, import a CSV."""

from __future__ import annotations

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
    SubscriptionStatus,
)
from newsletter.extensions import db
from tests.factories import make_list, make_subscriber
from tests.smtp import CapturingSMTPServer
from tests.web.admin_browser import logged_in_admin, token_for


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A browser logged in as an admin."""
    return logged_in_admin(app)


def test_create_a_list_from_the_lists_page(client: FlaskClient) -> None:
    response = client.post(
        "/admin/lists",
        data={
            "csrf_token": token_for(client, "/admin/lists"),
            "slug": "weekly",
            "name": "Weekly news",
            "description": "Every Friday",
            "optin": "single",
        },
    )
    assert response.status_code == 302
    lst = db.session.scalars(select(MailingList)).one()
    assert (lst.slug, lst.name, lst.optin, lst.public) == ("weekly", "Weekly news", OptIn.SINGLE,
                                                          False)
    page = client.get("/admin/lists").get_data(as_text=True)
    assert "Weekly news" in page
    assert "private" in page


def test_a_taken_slug_is_refused_beside_the_field(client: FlaskClient) -> None:
    make_list("weekly")
    response = client.post(
        "/admin/lists",
        data={"csrf_token": token_for(client, "/admin/lists"), "slug": "weekly", "name": "Again",
              "optin": "double", "public": "y"},
    )
    assert response.status_code == 422
    assert 'class="field-error"' in response.get_data(as_text=True)
    assert len(db.session.scalars(select(MailingList)).all()) == 1


def test_add_a_subscriber_to_a_single_opt_in_list(client: FlaskClient) -> None:
    make_list("news", name="News", optin=OptIn.SINGLE)
    response = client.post(
        "/admin/subscribers/new",
        data={"csrf_token": token_for(client, "/admin/subscribers/new"),
              "email": "ada@example.org", "name": "Ada", "lists": ["news"]},
    )
    assert response.status_code == 302
    subscriber = db.session.scalars(select(Subscriber)).one()
    [subscription] = subscriber.subscriptions
    assert subscription.status is SubscriptionStatus.CONFIRMED
    assert subscription.consent_source is ConsentSource.ADMIN
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "ada@example.org" in page
    assert "News" in page


def test_adding_to_a_double_opt_in_list_mails_a_confirmation(
    client: FlaskClient, run_jobs: Callable[[], None], mailbox: CapturingSMTPServer
) -> None:
    make_list("news", optin=OptIn.DOUBLE)
    client.post(
        "/admin/subscribers/new",
        data={"csrf_token": token_for(client, "/admin/subscribers/new"),
              "email": "ada@example.org", "lists": ["news"]},
    )
    run_jobs()
    subscriber = db.session.scalars(select(Subscriber)).one()
    assert subscriber.subscriptions[0].status is SubscriptionStatus.UNCONFIRMED
    assert len(mailbox.to("ada@example.org")) == 1


def test_adding_a_subscriber_needs_a_valid_address_and_a_list(client: FlaskClient) -> None:
    make_list("news")
    no_list = client.post(
        "/admin/subscribers/new",
        data={"csrf_token": token_for(client, "/admin/subscribers/new"),
              "email": "ada@example.org"},
    )
    assert no_list.status_code == 422
    assert "Choose at least one list" in no_list.get_data(as_text=True)
    bad = client.post(
        "/admin/subscribers/new",
        data={"csrf_token": token_for(client, "/admin/subscribers/new"),
              "email": "not an address", "lists": ["news"]},
    )
    assert bad.status_code == 422
    assert db.session.scalar(select(Subscriber)) is None


def test_subscribers_are_searchable_and_paged(client: FlaskClient) -> None:
    news = make_list("news", name="News")
    make_subscriber("ada@example.org", name="Ada Lovelace", lists=(news,))
    make_subscriber("grace@example.org", name="Grace Hopper")
    page = client.get("/admin/subscribers", query_string={"q": "ada lov"}).get_data(as_text=True)
    assert "ada@example.org" in page
    assert "grace@example.org" not in page
    assert "badge-confirmed" in page
    page = client.get("/admin/subscribers", query_string={"q": "GRACE@"}).get_data(as_text=True)
    assert "grace@example.org" in page and "ada@example.org" not in page
    page = client.get("/admin/subscribers", query_string={"q": "%"}).get_data(as_text=True)
    assert "No subscriber matches" in page  # % is searched for, not a wildcard

    for number in range(55):
        make_subscriber(f"many{number:02d}@example.org")
    first = client.get("/admin/subscribers").get_data(as_text=True)
    assert "ada@example.org" not in first  # the oldest come last
    older = re.search(r'href="([^"]*after=\d+[^"]*)" *>Older', first) or re.search(
        r'rel="next" href="([^"]+)"', first)
    assert older
    second = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "ada@example.org" in second


# The import pages: tests/web/test_admin_imports.py
