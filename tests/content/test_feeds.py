"""Feeds against a real HTTP server on loopback: conditional GET, entries to statements,
draft issues, automatic sending only when turned on, SSRF refusal, timeout, size cap and
backoff."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from newsletter.content import feeds
from newsletter.content.fetch import AddressRefused, FetchError, fetch, is_public
from newsletter.content.models import Feed, FeedEntry, Issue, IssueStatus, Statement
from newsletter.content.statements import statement_html
from newsletter.errors import ValidationError
from newsletter.extensions import db
from newsletter.models import utcnow
from tests.factories import make_list, make_subscriber
from tests.feed_server import Document, FeedServer, atom, rss

ETAG = '"v1"'
MODIFIED = "Tue, 15 Jun 2021 10:00:00 GMT"
FIRST = {
    "guid": "https://tenants.example.org/2021/06/15/won",
    "title": "We won the rent strike",
    "link": "https://tenants.example.org/2021/06/15/won.html",
    "html": '<p>Read <a href="demands/">the demands</a>.</p><script>alert(1)</script>'
            '<p onclick="x()">Second <img src="/img/m.jpg" alt="march"></p>',
}
SECOND = {
    "guid": "https://tenants.example.org/2021/06/20/next",
    "title": "What comes next",
    "link": "https://tenants.example.org/2021/06/20/next.html",
    "html": "<p>An assembly on *Monday*, 7pm.</p>\n\n<pre>line 1\n\n    line 3</pre>",
    "date": "Sun, 20 Jun 2021 10:00:00 GMT",
}


@pytest.fixture
def server() -> Iterator[FeedServer]:
    running = FeedServer().start()
    yield running
    running.stop()


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    app_config["FEEDS_ALLOW_PRIVATE"] = True  # the test server is on loopback
    app_config["FEEDS_TIMEOUT"] = 0.5
    app_config["FEEDS_MAX_BYTES"] = 64 * 1024
    yield app_config


def statements() -> list[Statement]:
    db.session.remove()
    return list(db.session.scalars(select(Statement).order_by(Statement.id)))


def fresh(feed_id: int) -> Feed:
    db.session.remove()
    return db.session.get(Feed, feed_id)  # type: ignore[return-value]


# --- polling --------------------------------------------------------------------------------


def test_rss_entries_become_cleaned_statements_and_a_304_changes_nothing(
    app: Flask, server: FeedServer
) -> None:
    server.documents["/rss.xml"] = Document(rss([FIRST]), etag=ETAG, last_modified=MODIFIED)
    feed_id = feeds.add_feed(server.url("/rss.xml")).id

    result = feeds.poll_feed(feed_id)

    assert result.error is None and len(result.statements) == 1
    (statement,) = statements()
    assert statement.title == "We won the rent strike"
    assert statement.date is not None and statement.date.isoformat() == "2021-06-15"
    assert statement.front_matter["permalink"] == FIRST["link"]
    html = statement_html(statement)
    assert "<script" not in html and "alert" not in html and "onclick" not in html
    # relative to the feed's own address, as feedparser reads them (RSS has no other base)
    assert f'href="{server.base_url}/demands/"' in html
    assert f'src="{server.base_url}/img/m.jpg"' in html
    stored = fresh(feed_id)
    assert (stored.etag, stored.title, stored.failures) == (ETAG, "Tenants' Union news", 0)

    again = feeds.poll_feed(feed_id)

    assert again.not_modified and again.statements == []
    assert server.count("/rss.xml") == 2
    assert server.requests[-1][1].get("If-None-Match") == ETAG
    assert len(statements()) == 1


def test_atom_is_polled_with_if_modified_since(app: Flask, server: FeedServer) -> None:
    entry = {"id": "urn:uuid:1", "title": "Atom entry", "link": "https://a.example.org/1",
             "html": "<p>Atom <b>text</b></p>"}  # fmt: skip
    server.documents["/atom.xml"] = Document(
        atom([entry]), content_type="application/atom+xml", last_modified=MODIFIED
    )
    feed = feeds.add_feed(server.url("/atom.xml"))

    assert len(feeds.poll_feed(feed.id).statements) == 1
    assert feeds.poll_feed(feed.id).not_modified
    assert server.requests[-1][1].get("If-Modified-Since") == MODIFIED
    (statement,) = statements()
    assert statement.author == "Atom Author" and "<b>text</b>" in statement_html(statement)


def test_entry_text_is_never_read_as_markdown_or_liquid(app: Flask, server: FeedServer) -> None:
    item = {**SECOND, "html": "<p>2*3*4 and {{ site.url }} and {% include x %}</p>"}
    server.documents["/rss.xml"] = Document(rss([item]))
    feeds.poll_feed(feeds.add_feed(server.url("/rss.xml")).id)
    html = statement_html(statements()[0])
    assert "2*3*4" in html and "{{ site.url }}" in html and "<em>" not in html


def test_a_new_entry_opens_a_draft_issue_and_is_not_sent_by_default(
    app: Flask, server: FeedServer
) -> None:
    news_slug = make_list("news").slug
    server.documents["/rss.xml"] = Document(rss([FIRST]), etag=ETAG)
    feed = feeds.add_feed(server.url("/rss.xml"), list_slugs=["news"], auto_open_draft=True)
    assert feed.auto_send is False

    first = feeds.poll_feed(feed.id)
    assert len(first.statements) == 1 and first.issues == []  # old entries open no drafts

    server.documents["/rss.xml"] = Document(rss([SECOND, FIRST]), etag='"v2"')
    second = feeds.poll_feed(feed.id)

    assert [s.title for s in second.statements] == ["What comes next"]
    db.session.remove()
    (issue,) = db.session.scalars(select(Issue)).all()
    assert issue.status is IssueStatus.DRAFT and issue.subject == "What comes next"
    assert [lst.slug for lst in issue.lists] == [news_slug]
    assert [s.title for s in issue.statements] == ["What comes next"]
    entry = db.session.scalars(select(FeedEntry).where(FeedEntry.issue_id == issue.id)).one()
    assert entry.guid == SECOND["guid"]
    assert "line 1\n \nline" not in statement_html(issue.statements[0])  # pre kept whole
    assert "    line 3" in statement_html(issue.statements[0])


def test_automatic_sending_only_when_turned_on(app: Flask, server: FeedServer) -> None:
    make_subscriber(lists=(make_list("news"),))  # someone to send to
    with pytest.raises(ValidationError) as refused:
        feeds.add_feed(server.url("/x.xml"), list_slugs=["news"], auto_send=True)
    assert refused.value.field == "auto_send"
    server.documents["/rss.xml"] = Document(rss([FIRST]))
    feed = feeds.add_feed(
        server.url("/rss.xml"), list_slugs=["news"], auto_open_draft=True, auto_send=True
    )
    feeds.poll_feed(feed.id)
    server.documents["/rss.xml"] = Document(rss([SECOND, FIRST]))
    issue_id = feeds.poll_feed(feed.id).issues[0].id
    db.session.remove()
    issue = db.session.get(Issue, issue_id)
    assert issue is not None and issue.status is IssueStatus.SENDING


def test_the_sweep_queues_due_feeds_once_and_the_workers_poll_them(
    app: Flask, server: FeedServer, run_jobs: Callable[[], None]
) -> None:
    server.documents["/rss.xml"] = Document(rss([FIRST, SECOND]))
    feed = feeds.add_feed(server.url("/rss.xml"), interval=600)

    assert feeds.enqueue_due() == [feed.id]
    assert feeds.enqueue_due() == []  # claimed: a second sweeper queues nothing
    run_jobs()

    assert sorted(s.title for s in statements()) == ["We won the rent strike", "What comes next"]
    stored = fresh(feed.id)
    assert stored.next_poll_at - stored.last_polled_at == timedelta(seconds=600)  # type: ignore[operator]
    assert feeds.enqueue_due() == []


# --- refusals and failures ------------------------------------------------------------------


def test_loopback_is_refused_when_private_addresses_are_not_allowed(
    app: Flask, server: FeedServer
) -> None:
    app.config["FEEDS_ALLOW_PRIVATE"] = False
    server.documents["/rss.xml"] = Document(rss([FIRST]))
    feed = feeds.add_feed(server.url("/rss.xml"))

    result = feeds.poll_feed(feed.id)

    assert result.error and "private, loopback or link-local" in result.error
    assert server.requests == []  # refused before a byte was sent
    assert fresh(feed.id).last_error == result.error and statements() == []
    with pytest.raises(AddressRefused):
        fetch(f"http://localhost:{server.httpd.server_address[1]}/rss.xml", allow_private=False)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
        ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("::1", False),
        ("fe80::1", False), ("fc00::1", False), ("::ffff:127.0.0.1", False),
        ("224.0.0.1", False), ("93.184.216.34", True), ("2606:4700::1111", True),
    ],
)
def test_which_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


def test_a_server_that_stalls_times_out(app: Flask, server: FeedServer) -> None:
    feed = feeds.add_feed(server.url("/stall"))
    started = time.monotonic()
    result = feeds.poll_feed(feed.id)
    assert result.error and "no answer within 0.5 seconds" in result.error
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("path", ["/endless", "/huge-declared"])
def test_a_feed_past_the_size_cap_is_refused(app: Flask, server: FeedServer, path: str) -> None:
    result = feeds.poll_feed(feeds.add_feed(server.url(path)).id)
    assert result.error and "larger than 65,536 bytes" in result.error


def test_a_failing_feed_shows_its_error_and_backs_off_until_it_works(
    app: Flask, server: FeedServer
) -> None:
    feed = feeds.add_feed(server.url("/error"))
    now = utcnow()

    feeds.poll_feed(feed.id, now=now)
    stored = fresh(feed.id)
    assert stored.failures == 1
    assert stored.last_error == "the server answered 500 Internal Server Error"
    assert stored.next_poll_at == now + timedelta(seconds=300)

    feeds.poll_feed(feed.id, now=now)
    feeds.poll_feed(feed.id, now=now)
    stored = fresh(feed.id)
    assert stored.failures == 3 and stored.next_poll_at == now + timedelta(seconds=1200)

    server.documents["/error-fixed.xml"] = Document(rss([FIRST]))
    feeds.update_feed(feed.id, url=server.url("/error-fixed.xml"))
    assert feeds.poll_feed(feed.id, now=now).error is None
    stored = fresh(feed.id)
    assert (stored.failures, stored.last_error) == (0, None)
    assert stored.next_poll_at == now + timedelta(seconds=stored.interval)


def test_not_a_feed_is_an_error(app: Flask, server: FeedServer) -> None:
    server.documents["/page.html"] = Document(b"<html><body>hi", content_type="text/html")
    result = feeds.poll_feed(feeds.add_feed(server.url("/page.html")).id)
    assert result.error and "not an RSS or Atom feed" in result.error


def test_bad_feed_settings_are_refused(app: Flask) -> None:
    for kwargs, field in [
        ({"url": "file:///etc/passwd"}, "url"),
        ({"url": "https://a.example.org/f", "interval": 5}, "interval"),
        ({"url": "https://a.example.org/f", "auto_open_draft": True}, "lists"),
        ({"url": "https://a.example.org/f", "list_slugs": ["nope"]}, "lists"),
    ]:
        with pytest.raises(ValidationError) as caught:
            feeds.add_feed(**kwargs)
        assert caught.value.field == field
    feeds.add_feed("https://a.example.org/f")
    with pytest.raises(ValidationError):
        feeds.add_feed("https://a.example.org/f")


def test_fetch_refuses_other_schemes() -> None:
    with pytest.raises(FetchError):
        fetch("ftp://example.org/feed.xml")


def test_deleting_a_feed_keeps_its_statements(app: Flask, server: FeedServer) -> None:
    server.documents["/rss.xml"] = Document(rss([FIRST]))
    feed = feeds.add_feed(server.url("/rss.xml"))
    feeds.poll_feed(feed.id)
    feeds.delete_feed(feed.id)
    db.session.remove()
    assert db.session.scalar(select(func.count()).select_from(Feed)) == 0
    assert db.session.scalar(select(func.count()).select_from(FeedEntry)) == 0
    assert len(statements()) == 1
