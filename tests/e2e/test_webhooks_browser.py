"""The webhook pages in a real browser, at phone and laptop widths: add an endpoint with
its events and see its secret, open its delivery log (attempts, give-up, retry), under the
CSP and asking nothing of another site."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from flask import Flask

from newsletter import events
from newsletter.auth import services
from newsletter.delivery.webhooks import service
from newsletter.extensions import db
from tests.e2e.helpers import Console, log_in
from tests.factories import make_list, make_subscriber
from tests.webhook_server import WebhookReceiver

if TYPE_CHECKING:
    from playwright.sync_api import Page

ADMIN = "editor@example.org"
PASSWORD = "correct horse battery"


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, "WEBHOOKS_ALLOW_PRIVATE": True, "WEBHOOKS_RETRY_SCHEDULE": "0.1"}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.mark.browser
def test_the_webhook_pages_in_a_browser(
    app: Flask, live_url: str, sized_page: Page, tmp_path: Path, receiver: WebhookReceiver,
    run_jobs: Callable[[], None],
) -> None:  # fmt: skip
    page = sized_page
    receiver.answers["/crm"] = [(200, {})]
    receiver.answers["/broken"] = [(500, {})]
    service.create_endpoint(receiver.url("/crm"), events.EVENT_KINDS[:3],
                            known=events.EVENT_KINDS, description="The CRM")  # fmt: skip
    broken = service.create_endpoint(receiver.url("/broken"), ["issue.sent"],
                                     known=events.EVENT_KINDS).id  # fmt: skip
    ada = make_subscriber("ada@example.org", lists=(make_list("news"),))
    events.publish("subscriber.subscribed",
                   events.subscription_data(ada.id, ada.email, "news"))  # fmt: skip
    events.publish("issue.sent", {"issue_id": 3, "total": 2, "sent": 2, "failed": 0})
    db.session.commit()
    run_jobs()
    services.create_user(ADMIN, PASSWORD)
    console = Console(page)
    requested: list[str] = []
    page.context.on("request", lambda request: requested.append(request.url))
    width = page.viewport_size["width"] if page.viewport_size else 0
    shots = Path(os.environ.get("NEWSLETTER_SCREENSHOTS") or tmp_path / "shots") / str(width)

    log_in(page, live_url, ADMIN, PASSWORD)

    page.goto(f"{live_url}/admin/webhooks")
    text = page.inner_text("body")
    assert "The CRM" in text and receiver.url("/broken") in text
    page.fill("input[name=url]", "https://hooks.example.org/news")
    page.check("input[name=events][value='subscriber.confirmed']")
    page.check("input[name=events][value='issue.sent']")
    with page.expect_navigation():
        page.locator("form button:has-text('Add endpoint')").click()
    assert "whsec_" in page.inner_text("#new-secret-value")
    page.screenshot(path=shots / "webhooks.png", full_page=True)

    page.goto(f"{live_url}/admin/webhooks/{broken}")
    text = page.inner_text("body")
    assert "given up" in text and "the endpoint answered 500" in text
    page.locator("details.attempts summary").first.click()
    page.screenshot(path=shots / "webhook-log.png", full_page=True)
    with page.expect_navigation():
        page.locator("button:has-text('Show the secret')").click()
    assert "whsec_" in page.inner_text("#secret-value")
    with page.expect_navigation():
        page.locator("button:has-text('Retry')").first.click()
    assert "queued to be sent again" in page.inner_text("body")

    assert console.take() == []
    assert all(urlsplit(url).hostname == "127.0.0.1" for url in requested), requested
