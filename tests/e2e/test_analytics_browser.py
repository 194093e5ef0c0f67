"""The Analytics tab in a real browser, under the Content-Security-Policy, at phone and
laptop widths: the SVG charts show, fit the screen, and nothing is asked of another site.
Screenshots land in ``<basetemp>/…/shots``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask

from newsletter.auth import services
from tests.e2e.helpers import Console, log_in
from tests.web.analytics_data import seed_sent_issue

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
def test_the_analytics_tab_draws_its_charts_on_any_width(
    app: Flask, live_url: str, sized_page: Page, tmp_path: Path
) -> None:
    page = sized_page
    issue_id = seed_sent_issue()
    services.create_user(ADMIN, PASSWORD)
    console = Console(page)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    width = page.viewport_size["width"] if page.viewport_size else 0
    shots = tmp_path / "shots" / str(width)

    log_in(page, live_url, ADMIN, PASSWORD)
    page.goto(f"{live_url}/admin/issues/{issue_id}/analytics")

    charts = page.locator("svg.chart")
    assert charts.count() == 6
    for index in range(charts.count()):
        box = charts.nth(index).bounding_box()
        assert box is not None and box["width"] > 100 and box["x"] + box["width"] <= width
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scroll
    assert page.locator("svg.chart rect.bar").count() > 0
    page.screenshot(path=shots / "analytics.png", full_page=True)
    keep = os.environ.get("NEWSLETTER_KEEP_SHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shots / "analytics.png", Path(keep) / f"analytics-{width}.png")
    assert all(url.startswith(live_url) for url in requested), requested
    assert console.take() == []
