"""The admin's feed pages: the list with each feed's state and error, add, edit, delete,
poll now; automatic sending only for those who may send."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from newsletter.auth.models import Role
from newsletter.auth.services import create_user
from newsletter.content import feeds
from newsletter.content.models import Feed, Statement
from newsletter.extensions import db
from tests.factories import make_list
from tests.feed_server import Document, FeedServer, rss
from tests.web.admin_browser import PASSWORD, as_browser, log_in, logged_in_admin, token_for

ITEM = {"guid": "g1", "title": "From the feed", "link": "https://t.example.org/1",
        "html": "<p>Entry text</p>"}  # fmt: skip


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    app_config["FEEDS_ALLOW_PRIVATE"] = True
    app_config["FEEDS_TIMEOUT"] = 0.5
    yield app_config


@pytest.fixture
def server() -> Iterator[FeedServer]:
    running = FeedServer().start()
    yield running
    running.stop()


def browser_as(app: Flask, role: Role, *, can_send: bool = False) -> FlaskClient:
    email = f"{role.value}{'-sender' if can_send else ''}@example.org"
    user = create_user(email, PASSWORD, role=role)
    user.can_send = can_send
    db.session.commit()
    client = as_browser(app.test_client())
    assert log_in(client, email=email).status_code == 302
    return client


def the_feed() -> Feed:
    db.session.remove()
    return db.session.scalars(select(Feed)).one()


def test_an_editor_adds_polls_edits_and_deletes_a_feed(app: Flask, server: FeedServer) -> None:
    make_list("news", name="News")
    server.documents["/rss.xml"] = Document(rss([ITEM]))
    client = logged_in_admin(app)

    response = client.post("/admin/feeds", data={
        "csrf_token": token_for(client, "/admin/feeds"), "url": server.url("/rss.xml"),
        "interval": "30", "lists": ["news"], "auto_open_draft": "y",
    })  # fmt: skip
    assert response.status_code == 302, response.get_data(as_text=True)
    feed = the_feed()
    feed_id = feed.id
    assert (feed.interval, feed.auto_open_draft, feed.auto_send) == (1800, True, False)
    page = client.get("/admin/feeds").get_data(as_text=True)
    assert server.url("/rss.xml") in page and "not polled yet" in page

    response = client.post(
        f"/admin/feeds/{feed_id}/poll", data={"csrf_token": token_for(client, "/admin/feeds")},
        follow_redirects=True,
    )  # fmt: skip
    assert "Polled: 1 new entry." in response.get_data(as_text=True)
    assert db.session.scalars(select(Statement.title)).all() == ["From the feed"]

    edit = f"/admin/feeds/{feed_id}"
    assert 'value="30"' in client.get(edit).get_data(as_text=True)
    response = client.post(edit, data={
        "csrf_token": token_for(client, edit), "url": server.url("/rss.xml"), "title": "Ours",
        "interval": "60", "lists": ["news"],
    })  # fmt: skip
    assert response.status_code == 302
    stored = the_feed()
    assert (stored.title, stored.interval, stored.auto_open_draft) == ("Ours", 3600, False)

    response = client.post(
        f"/admin/feeds/{feed_id}/delete", data={"csrf_token": token_for(client, "/admin/feeds")}
    )
    assert response.status_code == 302
    assert db.session.scalar(select(func.count()).select_from(Feed)) == 0
    assert db.session.scalar(select(func.count()).select_from(Statement)) == 1


def test_a_failing_feed_shows_its_error_on_the_list(app: Flask, server: FeedServer) -> None:
    feed = feeds.add_feed(server.url("/error"))
    feeds.poll_feed(feed.id)
    page = logged_in_admin(app).get("/admin/feeds").get_data(as_text=True)
    assert "the server answered 500 Internal Server Error" in page
    assert "1 failure in a row" in page


def test_a_bad_address_is_shown_beside_the_field(app: Flask) -> None:
    client = logged_in_admin(app)
    response = client.post("/admin/feeds", data={
        "csrf_token": token_for(client, "/admin/feeds"), "url": "ftp://example.org/feed",
    })  # fmt: skip
    assert response.status_code == 422
    assert "starts with http:// or https://" in response.get_data(as_text=True)


def test_only_those_who_may_send_turn_on_automatic_sending(app: Flask) -> None:
    make_list("news")
    editor = browser_as(app, Role.EDITOR)
    data = {"url": "https://feeds.example.org/a.xml", "lists": ["news"],
            "auto_open_draft": "y", "auto_send": "y"}  # fmt: skip
    response = editor.post(
        "/admin/feeds", data={**data, "csrf_token": token_for(editor, "/admin/feeds")}
    )
    assert response.status_code == 422
    assert "Only those who may send to lists can turn this on." in response.get_data(as_text=True)

    sender = browser_as(app, Role.EDITOR, can_send=True)
    response = sender.post(
        "/admin/feeds", data={**data, "csrf_token": token_for(sender, "/admin/feeds")}
    )
    assert response.status_code == 302
    assert the_feed().auto_send is True


def test_a_viewer_sees_feeds_but_changes_nothing(app: Flask) -> None:
    feed = feeds.add_feed("https://feeds.example.org/a.xml")
    viewer = browser_as(app, Role.VIEWER)
    page = viewer.get("/admin/feeds")
    assert page.status_code == 200 and "feeds.example.org/a.xml" in page.get_data(as_text=True)
    assert "Add a feed" not in page.get_data(as_text=True)
    token = token_for(viewer, "/admin/feeds")
    assert (
        viewer.post(f"/admin/feeds/{feed.id}/delete", data={"csrf_token": token}).status_code == 403
    )
    assert (
        viewer.post(
            "/admin/feeds", data={"csrf_token": token, "url": "https://x.example.org/f"}
        ).status_code
        == 403
    )
