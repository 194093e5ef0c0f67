"""The reader's preferences page in a real browser: change lists, download the data, erase.

At phone and laptop widths, with screenshots of each step (in the test's ``shots`` folder).
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from sqlalchemy import select

from newsletter.audience.models import Subscriber, SubscriptionStatus
from newsletter.audience.tokens import manage_url
from newsletter.extensions import db
from tests.e2e.helpers import Console
from tests.factories import make_list, make_subscriber

if False:  # typing only; Playwright is a dev dependency
    from playwright.sync_api import Page


def statuses(email: str) -> dict[str, SubscriptionStatus]:
    db.session.remove()
    subscriber = db.session.scalar(select(Subscriber).where(Subscriber.email == email))
    assert subscriber is not None
    return {s.list.slug: s.status for s in subscriber.subscriptions}


@pytest.mark.browser
def test_a_reader_changes_lists_downloads_their_data_and_erases_it(
    app: Flask, live_url: str, sized_page: Page, tmp_path: Path
) -> None:
    news = make_list("news", name="Movement News", description="What we do, weekly.")
    make_list("events", name="Events")
    reader = make_subscriber("grace@example.com", lists=(news,), name="Grace",
                             attributes={"city": "Arlington"})  # fmt: skip
    path = urlsplit(manage_url(reader.id, version=reader.token_version)).path
    page = sized_page
    console = Console(page)
    width = page.viewport_size["width"] if page.viewport_size else 0
    shots = tmp_path / "shots" / str(width)

    def shot(name: str) -> None:
        page.screenshot(path=shots / f"{name}.png", full_page=True)
        assert console.take() == [], f"the browser complained on {name}"

    page.goto(live_url + path)
    shot("1-preferences")

    # Change the lists: leave news, join events, new name.
    page.fill("input[name=name]", "Grace Hopper")
    page.uncheck("input[name=lists][value=news]")
    page.check("input[name=lists][value=events]")
    with page.expect_navigation():
        page.click("text=Save preferences")
    assert "preferences are saved" in page.inner_text("body")
    assert statuses("grace@example.com") == {
        "news": SubscriptionStatus.UNSUBSCRIBED, "events": SubscriptionStatus.CONFIRMED,
    }
    shot("2-saved")

    # Download the data.
    with page.expect_download() as download_info:
        page.click("text=Download my data (JSON)")
    download = download_info.value
    data = json.loads(Path(download.path()).read_text())
    assert data["subscriber"]["name"] == "Grace Hopper"
    assert data["attributes"] == {"city": "Arlington"}
    assert {s["list"]: s["status"] for s in data["subscriptions"]} == {
        "news": "unsubscribed", "events": "confirmed",
    }
    assert download.suggested_filename.endswith(".json")

    # Erase: the button is behind a confirm step.
    erase_button = page.locator("button", has_text="Erase my data now")
    assert not erase_button.is_visible()
    page.click("text=Erase everything about me")
    shot("3-erase-confirm")
    with page.expect_navigation():
        erase_button.click()
    assert "Your data is erased" in page.inner_text("body")
    shot("4-erased")
    db.session.remove()
    assert db.session.scalar(select(Subscriber)) is None

    # The link is dead now, like any invalid link.
    response = page.goto(live_url + path)
    assert response is not None and response.status == 400
    assert "no longer valid" in page.inner_text("body").lower()
    page.screenshot(path=shots / "5-link-dead.png", full_page=True)
    assert all("status of 400" in complaint for complaint in console.take())
