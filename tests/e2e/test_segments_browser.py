"""The segment form in a real browser, under the Content-Security-Policy: the builder's rows
write the query, the live count follows the typing, and an error names its column.
Screenshots land in ``<basetemp>/…/shots``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from flask import Flask

from newsletter.audience.segments.service import list_segments
from newsletter.auth import services
from tests.e2e.helpers import Console, log_in
from tests.factories import make_list, make_subscriber

if TYPE_CHECKING:
    from playwright.sync_api import Page

ADMIN, PASSWORD = "admin@example.org", "correct horse battery"


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {
        **app_config,
        "SMTP_URL": None,
    }


@pytest.mark.browser
def test_build_a_segment_with_a_live_count(
    app: Flask, live_url: str, sized_page: Page, tmp_path: Path
) -> None:
    page = sized_page
    news = make_list("news", name="News")
    for number, city in enumerate(["Madrid", "Madrid", "Lima"]):
        make_subscriber(f"r{number}@example.org", lists=(news,), attributes={"city": city})
    services.create_user(ADMIN, PASSWORD)
    console = Console(page)
    width = page.viewport_size["width"] if page.viewport_size else 0
    shots = tmp_path / "shots" / str(width)

    log_in(page, live_url, ADMIN, PASSWORD)

    page.goto(live_url + "/admin/segments/new")
    page.fill("input[name=name]", "Madrid readers")
    # the builder: one row "attribute city = Madrid", written into the query box
    row = page.locator(".builder-row").first
    row.locator("select[aria-label=Field]").select_option("attributes")
    row.locator("input[aria-label='Attribute key']").fill("city")
    row.locator("input[aria-label=Value]").fill("Madrid")
    page.locator("[data-write=replace]").click()
    assert page.locator("textarea[name=query]").input_value() == 'attributes.city = "Madrid"'
    count = page.locator("#segment-count")
    count.filter(has_text="2 subscribers match").wait_for()
    page.screenshot(path=shots / "segment-builder.png", full_page=True)

    # typing an error shows where it is
    page.fill("textarea[name=query]", 'attributes.city = "Madrid" and')
    count.filter(has_text="at column 31").wait_for()
    page.screenshot(path=shots / "segment-error.png", full_page=True)

    page.fill("textarea[name=query]", 'attributes.city = "Madrid" or attributes.city = "Lima"')
    count.filter(has_text="3 subscribers match").wait_for()
    with page.expect_navigation():
        page.locator("button[type=submit]", has_text="Save segment").click()
    assert urlsplit(page.url).path == "/admin/segments"
    page.screenshot(path=shots / "segments.png", full_page=True)
    assert [segment.name for segment in list_segments()] == ["Madrid readers"]
    assert console.take() == []
