"""The admin's subscriber pages in a real browser, at a phone's width and a laptop's: search,
open a subscriber, edit the attributes, blocklist and revoke their links in mail (through the
confirmation dialogs).

Screenshots land in ``<basetemp>/…/shots/<width>``; run with ``--basetemp=DIR`` to look at
them. The browser must report nothing (no CSP violation, no script error) and ask no other
host for anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from flask import Flask

from newsletter.audience.models import Subscriber, SubscriberStatus
from newsletter.audience.tokens import manage_url
from newsletter.auth import services
from newsletter.extensions import db
from tests.e2e.helpers import Console, log_in
from tests.factories import make_list, make_subscriber

if TYPE_CHECKING:
    from playwright.sync_api import Page

ADMIN, PASSWORD = "admin@example.org", "correct horse battery"


def seed() -> int:
    news = make_list("news", name="Movement News")
    alerts = make_list("alerts", name="Urgent alerts")
    make_list("weekly", name="Weekly digest")
    for number in range(8):
        make_subscriber(f"reader{number}@example.org", lists=(news,))
    ada = make_subscriber(
        "ada.lovelace-byron@analytical-engine.example.org", name="Ada Lovelace",
        lists=(news, alerts), attributes={"city": "London", "member_since": 1843},
    )
    services.create_user(ADMIN, PASSWORD)
    return ada.id


@pytest.mark.browser
def test_search_open_edit_attributes_and_blocklist(
    app: Flask, live_url: str, sized_page: Page, tmp_path: Path
) -> None:
    page = sized_page
    ada_id = seed()
    console = Console(page)
    requested: list[str] = []
    page.context.on("request", lambda request: requested.append(request.url))
    width = page.viewport_size["width"] if page.viewport_size else 0
    shots = tmp_path / "shots" / str(width)

    def shot(name: str, expected_status: int | None = None) -> None:
        page.screenshot(path=shots / f"{name}.png", full_page=True)
        complaints = [
            text for text in console.take()
            if not (expected_status and f"status of {expected_status}" in text)
        ]
        assert complaints == [], f"the browser complained on {name}"

    log_in(page, live_url, ADMIN, PASSWORD)

    page.goto(f"{live_url}/admin/subscribers")
    shot("subscribers")
    page.fill("input[name=q]", "ADA LOV")
    with page.expect_navigation():
        page.locator("form[role=search] button[type=submit]").click()
    rows = page.locator("table.subscribers tbody tr")
    assert rows.count() == 1
    shot("search")
    with page.expect_navigation():
        rows.first.locator("a").click()
    assert urlsplit(page.url).path == f"/admin/subscribers/{ada_id}"
    assert "Urgent alerts" in page.inner_text("body")
    shot("subscriber")

    page.fill("textarea[name=attributes]", json.dumps({"city": "Paris", "member_since": 1843}))
    with page.expect_navigation():
        page.locator("form[action$='/edit'] button[type=submit]").click()
    assert "Saved." in page.inner_text("body")
    assert "Paris" in page.inner_text("dl.attributes")

    page.fill("textarea[name=attributes]", "{not json")
    with page.expect_navigation():
        page.locator("form[action$='/edit'] button[type=submit]").click()
    assert "not valid JSON" in page.inner_text("body")
    shot("attributes-error", expected_status=422)  # the form said why, as it should

    page.goto(f"{live_url}/admin/subscribers/{ada_id}")
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.locator("form[action$='/blocklist'] button").click()
    assert "Blocklisted" in page.inner_text("body")
    assert page.locator("form[action$='/unblocklist'] button").is_visible()
    shot("blocklisted")

    db.session.remove()
    subscriber = db.session.get(Subscriber, ada_id)
    assert subscriber is not None
    assert subscriber.status is SubscriberStatus.BLOCKLISTED
    assert subscriber.attributes == {"city": "Paris", "member_since": 1843}
    # Nothing on the page is wider than the screen.
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at {width}px"
    assert [url for url in requested if urlsplit(url).hostname != "127.0.0.1"] == []


@pytest.mark.browser
def test_revoking_a_person_s_links_through_the_confirmation(
    app: Flask, live_url: str, sized_page: Page, tmp_path: Path
) -> None:
    page = sized_page
    ada_id = seed()
    console = Console(page)
    ada = db.session.get(Subscriber, ada_id)
    assert ada is not None
    old_manage = urlsplit(manage_url(ada_id, version=ada.token_version)).path
    width = page.viewport_size["width"] if page.viewport_size else 0

    log_in(page, live_url, ADMIN, PASSWORD)
    page.goto(f"{live_url}/admin/subscribers/{ada_id}")
    asked: list[str] = []

    def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    with page.expect_navigation():
        page.locator("form[action$='/revoke-links'] button").click()
    assert "stop working" in asked[0]
    assert "the next mail carries new ones" in page.inner_text("body")
    page.screenshot(path=tmp_path / "shots" / str(width) / "links-revoked.png", full_page=True)
    assert console.take() == []
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at {width}px"

    response = page.goto(f"{live_url}{old_manage}")
    assert response is not None and response.status == 400
    assert "no longer valid" in page.inner_text("body")
