"""The feeds page and a zip import in a real browser, at phone and laptop widths: the
page works under the CSP, asks nothing of another site, and shows a failing feed's error."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from flask import Flask

from newsletter.auth import services
from newsletter.content import feeds
from tests.e2e.helpers import Console, log_in
from tests.factories import make_list
from tests.feed_server import Document, FeedServer, rss

if TYPE_CHECKING:
    from playwright.sync_api import Page

ADMIN = "editor@example.org"
PASSWORD = "correct horse battery"
SITE = Path(__file__).resolve().parent.parent / "data" / "jekyll-site"


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    app_config["FEEDS_ALLOW_PRIVATE"] = True
    app_config["FEEDS_TIMEOUT"] = 0.5
    app_config["SITE_URL"] = "https://tenants.example.org/union"
    yield app_config


@pytest.fixture
def server() -> Iterator[FeedServer]:
    running = FeedServer().start()
    yield running
    running.stop()


@pytest.mark.browser
def test_the_feeds_page_and_a_zip_import_in_a_browser(
    app: Flask, live_url: str, sized_page: Page, tmp_path: Path, server: FeedServer
) -> None:
    page = sized_page
    make_list("news", name="Movement News")
    server.documents["/rss.xml"] = Document(rss([{
        "guid": "g1", "title": "From the feed", "link": "https://t.example.org/1",
        "html": "<p>Entry</p>",
    }]))  # fmt: skip
    feeds.poll_feed(feeds.add_feed(server.url("/rss.xml"), title="Union news").id)
    feeds.poll_feed(feeds.add_feed(server.url("/error")).id)
    services.create_user(ADMIN, PASSWORD)
    console = Console(page)
    requested: list[str] = []
    page.context.on("request", lambda request: requested.append(request.url))
    width = page.viewport_size["width"] if page.viewport_size else 0
    shots = tmp_path / "shots" / str(width)

    log_in(page, live_url, ADMIN, PASSWORD)

    page.goto(f"{live_url}/admin/feeds")
    text = page.inner_text("body")
    assert "Union news" in text and "the server answered 500" in text
    page.screenshot(path=shots / "feeds.png", full_page=True)

    page.fill("input[name=url]", "https://feeds.example.org/new.xml")
    page.check("input[name=auto_open_draft]")
    page.check("input[name=lists][value=news]")
    with page.expect_navigation():
        page.locator("form button:has-text('Add feed')").click()
    assert "feeds.example.org/new.xml added" in page.inner_text("body")

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in SITE.rglob("*"):
            if path.is_file():
                bundle.write(path, path.relative_to(SITE).as_posix())
    zip_path = tmp_path / "site.zip"
    zip_path.write_bytes(archive.getvalue())
    page.goto(f"{live_url}/admin/statements")
    page.set_input_files("input[name=file]", str(zip_path))
    with page.expect_navigation():
        page.locator("form button:has-text('Import')").click()
    text = page.inner_text("body")
    assert "Imported the zip: 2 created" in text and "created strike-diary" in text
    page.screenshot(path=shots / "statements-zip.png", full_page=True)

    assert console.take() == []
    assert all(urlsplit(url).hostname == "127.0.0.1" for url in requested), requested
