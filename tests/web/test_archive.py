"""The public archive: only issues meant for the public, by a stable slug, as a page of the
site; the mail's "view in browser" link; remote images linked or proxied."""

from __future__ import annotations

import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from newsletter.audience.models import OptIn
from newsletter.content.models import Issue, IssueStatus
from newsletter.content.remote_images import RemoteImageError, fetch_image
from newsletter.delivery.send import dispatcher
from newsletter.extensions import db
from tests.factories import make_issue, make_list, make_statement, make_subscriber
from tests.smtp import CapturingSMTPServer

ATOM = "{http://www.w3.org/2005/Atom}"
ATOM_LINK = re.compile(
    r'<link rel="alternate" type="application/atom\+xml"[^>]*href="https://news\.example\.org'
    r'/archive\.atom">'
)
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def page(response: Any) -> str:
    return str(response.get_data(as_text=True))


def sent(
    subject: str, *, public: bool = True, run_jobs: Callable[[], None], **statement: Any
) -> Issue:
    """An issue sent through the real path to one confirmed reader on a (public) list."""
    lst = make_list(name=f"List for {subject}", public=public, optin=OptIn.SINGLE)
    make_subscriber(lists=(lst,))
    issue = make_issue((make_statement(**statement),), (lst,), subject=subject)
    issue_id = issue.id
    dispatcher.request_send(issue_id)
    run_jobs()
    found = db.session.get(Issue, issue_id)
    assert found is not None and found.status is IssueStatus.SENT
    return found


def test_a_public_issue_has_a_permalink_by_slug_and_old_links_redirect(
    client: FlaskClient, run_jobs: Callable[[], None]
) -> None:
    issue = sent("Spring: what's next?", run_jobs=run_jobs)
    assert issue.slug == "spring-what-s-next"

    listing = page(client.get("/archive"))
    assert 'href="/archive/spring-what-s-next"' in listing
    assert ATOM_LINK.search(listing.split("</head>")[0])
    old = client.get(f"/archive/{issue.id}")
    assert old.status_code == 301 and old.headers["Location"].endswith(
        "/archive/spring-what-s-next")
    assert client.get("/archive/spring-what-s-next").status_code == 200

    # The same subject again gets a slug of its own; the first one never changes.
    first_id = issue.id
    issue.subject = "Renamed afterwards"
    db.session.commit()
    again = sent("Spring: what's next?", run_jobs=run_jobs)
    assert again.slug == "spring-what-s-next-2"
    renamed = db.session.get(Issue, first_id)
    assert renamed is not None and renamed.slug == "spring-what-s-next"

    feed = ET.fromstring(client.get("/archive.atom").get_data())
    links = [e.find(f"{ATOM}link").get("href") for e in feed.findall(f"{ATOM}entry")]
    assert links == ["https://news.example.org/archive/spring-what-s-next-2",
                     "https://news.example.org/archive/spring-what-s-next"]


def test_private_and_kept_out_issues_are_nowhere_in_the_archive(
    client: FlaskClient, run_jobs: Callable[[], None]
) -> None:
    private = sent("Board minutes", public=False, run_jobs=run_jobs)
    hidden_ones = [(private.id, private.slug)]
    kept = sent("Not for the archive", run_jobs=run_jobs)
    kept.kept_out = True
    db.session.commit()
    hidden_ones.append((kept.id, kept.slug))
    shown = sent("For everyone", run_jobs=run_jobs)

    listing = page(client.get("/archive"))
    assert "For everyone" in listing
    assert "Board minutes" not in listing and "Not for the archive" not in listing
    unknown = client.get("/archive/no-such-issue")
    for issue_id, slug in hidden_ones:
        for path in (f"/archive/{slug}", f"/archive/{issue_id}"):
            hidden = client.get(path)
            assert hidden.status_code == 404
            assert page(hidden) == page(unknown)  # nothing tells that it exists
    feed = page(client.get("/archive.atom"))
    assert "For everyone" in feed
    assert "Board minutes" not in feed and "Not for the archive" not in feed
    assert client.get(f"/archive/{shown.slug}").status_code == 200


def test_the_mail_links_to_its_page_only_when_the_issue_is_public(
    client: FlaskClient, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    public_slug = sent("Open letter", run_jobs=run_jobs).slug
    private_slug = sent("Members only", public=False, run_jobs=run_jobs).slug

    by_subject = {m.message["Subject"]: m.message for m in mailbox.messages}
    url = f"https://news.example.org/archive/{public_slug}"
    public_mail = by_subject["Open letter"]
    assert f'href="{url}"' in public_mail.get_body(("html",)).get_content()
    assert f"View in your browser: {url}" in public_mail.get_body(("plain",)).get_content()
    private_mail = by_subject["Members only"]
    for part in ("html", "plain"):
        content = private_mail.get_body((part,)).get_content()
        assert "View in your browser" not in content and "/archive/" not in content
    assert client.get(f"/archive/{private_slug}").status_code == 404


def test_an_archived_issue_is_a_page_of_the_site_not_the_mail(
    client: FlaskClient, run_jobs: Callable[[], None]
) -> None:
    issue = sent("Our autumn news", run_jobs=run_jobs, title="The harvest",
                 body="We *harvested* everything.")
    response = client.get(f"/archive/{issue.slug}")
    html = page(response)

    assert '<header class="site-header">' in html  # the site's own layout
    assert 'href="/archive"' in html and "All past issues" in html  # a way back
    assert "The harvest" in html and "<em>harvested</em>" in html
    for mail_only in ("You receive this", "Unsubscribe", "unsubscribe", "/manage/",
                      "Manage your subscription", "View in your browser", "%%NL-"):
        assert mail_only not in html, mail_only
    assert ATOM_LINK.search(html.split("</head>")[0])
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_remote_images_become_links_by_default(
    client: FlaskClient, run_jobs: Callable[[], None]
) -> None:
    issue = sent("With pictures", run_jobs=run_jobs, body=(
        "![A march](https://images.example.com/march.jpg)\n\n"
        "![Ours](https://news.example.org/media/ours.png)\n"))
    html = page(client.get(f"/archive/{issue.slug}"))

    assert 'src="https://images.example.com' not in html
    assert re.search(r'<a class="remote-image" href="https://images\.example\.com/march\.jpg"'
                     r'[^>]*>Image: A march', html)
    assert '<img src="https://news.example.org/media/ours.png"' in html  # our own: kept
    body = html.split("<body", 1)[1]
    assert not re.search(r'(src|href)="https?://(?!news\.example\.org)[^"]*"[^>]*>(?!Image)',
                         body.replace('class="remote-image" href', ""))


class _ImageServer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        kinds = {"/pic.png": ("image/png", PNG), "/page.html": ("text/html", b"<p>hi</p>"),
                 "/big.png": ("image/png", PNG * 100)}
        if self.path not in kinds:
            self.send_response(404)
            self.end_headers()
            return
        kind, body = kinds[self.path]
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def image_server() -> Iterator[str]:
    """A real HTTP server on loopback serving a PNG, an HTML page and a large PNG."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ImageServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_proxy_mode_serves_remote_images_through_the_site(
    app: Flask, client: FlaskClient, run_jobs: Callable[[], None], image_server: str
) -> None:
    app.config.update(ARCHIVE_REMOTE_IMAGES="proxy", ARCHIVE_IMAGE_ALLOW_PRIVATE=True,
                      ARCHIVE_IMAGE_MAX_BYTES=1000)
    issue = sent("Proxied", run_jobs=run_jobs, body=(
        f"![A pixel]({image_server}/pic.png)\n\n![Not an image]({image_server}/page.html)\n\n"
        f"![Too big]({image_server}/big.png)\n"))
    html = page(client.get(f"/archive/{issue.slug}"))

    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) == 3 and all(s.startswith("/archive/image?u=") for s in sources)
    pixel = client.get(sources[0].replace("&amp;", "&"))
    assert pixel.status_code == 200 and pixel.mimetype == "image/png" and pixel.data == PNG
    assert client.get(sources[1].replace("&amp;", "&")).status_code == 404  # text/html
    assert client.get(sources[2].replace("&amp;", "&")).status_code == 404  # over the cap
    # A URL the site did not sign is not fetched.
    forged = sources[0].replace("&amp;", "&").rsplit("&s=", 1)[0] + "&s=" + "0" * 32
    assert client.get(forged).status_code == 404


def test_the_proxy_refuses_private_addresses_unless_allowed(image_server: str) -> None:
    with pytest.raises(RemoteImageError, match="private or local address"):
        fetch_image(f"{image_server}/pic.png", max_bytes=10_000, timeout=2)
    for url in ("http://10.0.0.1/x.png", "http://[::1]/x.png", "http://169.254.169.254/x.png",
                "file:///etc/passwd", "http://user:pw@127.0.0.1/x.png"):
        with pytest.raises(RemoteImageError):
            fetch_image(url, max_bytes=10_000, timeout=2)
    allowed = fetch_image(f"{image_server}/pic.png", max_bytes=10_000, timeout=2,
                          allow_private=True)
    assert allowed.body == PNG


def test_the_image_route_is_closed_in_link_mode(client: FlaskClient) -> None:
    assert client.get("/archive/image?u=http://x/y.png&s=abc").status_code == 404


def test_a_sent_issues_page_keeps_what_was_sent_when_its_statement_changes_or_goes(
    client: FlaskClient, run_jobs: Callable[[], None]
) -> None:
    from newsletter.content.writing import delete_statement, update_statement

    issue = sent("As it was", run_jobs=run_jobs, title="Our statement",
                 body="The words we *sent*.")
    statement = issue.statements[0]
    update_statement(statement.id, title="Rewritten", body="Other words entirely.")
    shown = page(client.get(f"/archive/{issue.slug}"))
    assert "Our statement" in shown and "The words we <em>sent</em>." in shown
    assert "Rewritten" not in shown and "Other words" not in shown

    delete_statement(statement.id)
    still = page(client.get(f"/archive/{issue.slug}"))
    assert "Our statement" in still and "The words we <em>sent</em>." in still
