"""The built-in templates, the archive and the delivery log in a real browser, at a phone's
width and a laptop's. Screenshots land in ``<basetemp>/…/shots/<width>/``; run with
``--basetemp=DIR`` to look at them. Nothing may be fetched from another host, and the browser
must not complain (CSP, script errors, failed loads)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from flask import Flask

from newsletter.audience.models import OptIn
from newsletter.auth import services
from newsletter.content.models import Issue
from newsletter.content.templates import builtin_templates
from newsletter.delivery.models import Delivery, DeliveryStatus
from newsletter.delivery.send import dispatcher
from newsletter.extensions import db
from tests.e2e.helpers import Console, log_in
from tests.factories import make_issue, make_list, make_statement, make_subscriber

if TYPE_CHECKING:
    from playwright.sync_api import Page

ADMIN, PASSWORD = "admin@example.org", "correct horse battery"
LONG_ADDRESS = "a.very.long.address.of.someone.who.likes.long.names@subdomain.example-domain.org"


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {
        **app_config,
        "SMTP_URL": None,
    }


def log_in_as_admin(page: Page, live_url: str) -> None:
    services.create_user(ADMIN, PASSWORD)
    log_in(page, live_url, ADMIN, PASSWORD)
    assert urlsplit(page.url).path == "/admin/"


def shots_dir(page: Page, tmp_path: Path) -> Path:
    width = page.viewport_size["width"] if page.viewport_size else 0
    return tmp_path / "shots" / str(width)


@pytest.mark.browser
def test_each_built_in_template_as_a_reader_sees_it(
    app: Flask, live_url: str, sized_page: Page, tmp_path: Path
) -> None:
    page = sized_page
    console = Console(page)
    requested: list[str] = []
    page.context.on("request", lambda request: requested.append(request.url))
    log_in_as_admin(page, live_url)
    shots = shots_dir(page, tmp_path)
    for name, template in builtin_templates().items():
        # The preview on its own, as wide as the viewport: what a mail app shows.
        response = page.goto(f"{live_url}/admin/templates/{template.id}/preview.html")
        assert response is not None and response.ok, name
        page.screenshot(path=shots / f"template-{name}.png", full_page=True)
        # The editor page with the preview frame and the variables beside it.
        response = page.goto(f"{live_url}/admin/templates/{template.id}")
        assert response is not None and response.ok
        assert page.locator(".variable-list dt").count() > 3
        frame = page.frame_locator("iframe.preview")
        frame.locator("body").wait_for()
        assert frame.locator("text=Unsubscribe").count() > 0 or name == "transactional"
        page.screenshot(path=shots / f"template-{name}-editor.png", full_page=True)
        assert console.take() == [], name
    assert [url for url in requested if urlsplit(url).hostname != "127.0.0.1"] == []


@pytest.mark.browser
def test_the_archive_and_an_archived_issue_read_well(
    app: Flask, live_url: str, sized_page: Page, tmp_path: Path, run_jobs: Any
) -> None:
    page = sized_page
    console = Console(page)
    requested: list[str] = []
    page.context.on("request", lambda request: requested.append(request.url))
    news = make_list("news", name="Movement News", optin=OptIn.SINGLE)
    make_subscriber(lists=(news,))
    statements = (
        make_statement(title="A statement with a rather long title about the winter campaign",
                       body="We *met*.\n\n![A march](https://images.example.com/march.jpg)\n\n"
                            "| Day | Place |\n| --- | --- |\n| Saturday | The hall |\n"),
        make_statement(title="Second thoughts", body="> Nothing about us without us.\n"),
    )
    issue = make_issue(statements, (news,), subject="Winter: what comes next",
                       intro="Hello all, **two** statements this time.")
    issue_id = issue.id
    dispatcher.request_send(issue_id)
    run_jobs()
    slug = db.session.get(Issue, issue_id).slug
    shots = shots_dir(page, tmp_path)

    assert page.goto(f"{live_url}/archive").ok
    page.screenshot(path=shots / "archive.png", full_page=True)
    assert page.goto(f"{live_url}/archive/{slug}").ok
    page.screenshot(path=shots / "archive-issue.png", full_page=True)
    body = page.inner_text("body")
    assert "All past issues" in body and "Unsubscribe" not in body
    assert "Image: A march" in body
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, "the page scrolls sideways"
    assert console.take() == []
    assert [url for url in requested if urlsplit(url).hostname != "127.0.0.1"] == []
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert icon and page.request.get(live_url + icon).ok


@pytest.mark.browser
def test_the_delivery_log_filters_wraps_and_counts(
    app: Flask, live_url: str, sized_page: Page, tmp_path: Path, run_jobs: Any
) -> None:
    page = sized_page
    console = Console(page)
    news = make_list("news", name="Movement News", optin=OptIn.SINGLE)
    make_subscriber(LONG_ADDRESS, lists=(news,))
    make_subscriber("ada@example.com", lists=(news,))
    issue_id = make_issue((make_statement(),), (news,), subject="Log me").id
    dispatcher.request_send(issue_id)
    run_jobs()
    assert {d.status for d in db.session.query(Delivery)} == {DeliveryStatus.SENT}
    log_in_as_admin(page, live_url)
    shots = shots_dir(page, tmp_path)

    assert page.goto(f"{live_url}/admin/deliveries?issue={issue_id}").ok
    page.screenshot(path=shots / "deliveries.png", full_page=True)
    # Each message went out on its first attempt: the log says 1, not 0.
    attempts = page.locator("td[data-label=Attempts]").all_inner_texts()
    assert [text.strip() for text in attempts] == ["1", "1"]
    # The long address wraps inside the page instead of pushing it sideways.
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, "the log scrolls sideways"
    # The filter box is wide enough to read an address, and filtering works.
    box = page.locator("input[name=email]").bounding_box()
    assert box is not None and box["width"] >= 200
    page.fill("input[name=email]", "ADA@example.com")
    with page.expect_navigation():
        page.locator(".log-filters button[type=submit]").click()
    page.screenshot(path=shots / "deliveries-filtered.png", full_page=True)
    emails = page.locator("td[data-label=Email]").all_inner_texts()
    assert [text.strip() for text in emails] == ["ada@example.com"]
    assert console.take() == []
