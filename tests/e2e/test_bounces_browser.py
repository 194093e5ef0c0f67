"""The admin's Bounces page and a subscriber's bounce events in a real browser, at a phone's
width and a laptop's: save the policy, read an unread message and classify it, reinstate.

Screenshots land in ``<basetemp>/…/shots/<width>``; run with ``--basetemp=DIR`` to look at
them. The browser must report nothing and ask no other host for anything.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from flask import Flask

from newsletter.audience.models import Subscriber, SubscriberStatus
from newsletter.auth import services
from newsletter.delivery.bounces import policy, settings
from newsletter.delivery.bounces.models import BounceSource
from newsletter.extensions import db
from tests.delivery.bounce_samples import unreadable
from tests.e2e.helpers import Shots, log_in
from tests.factories import make_issue, make_list, make_statement, make_subscriber

if TYPE_CHECKING:
    from playwright.sync_api import Page

ADMIN, PASSWORD = "admin@example.org", "correct horse battery"
DAY1 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def seed() -> int:
    news = make_list("news", name="Movement News")
    issue = make_issue((make_statement(title="On the election"),), (news,), subject="Weekly")
    ada = make_subscriber("ada.lovelace-byron@analytical-engine.example.org", lists=(news,))
    make_subscriber("bo@example.org", lists=(news,))
    make_subscriber("cy@example.org", lists=(news,))
    for day in range(5):
        policy.record(ada.id, "soft", "452 4.2.2 <ada.lovelace-byron@analytical-engine."
                      "example.org>: Mailbox full, quota exceeded for this recipient",
                      BounceSource.LMTP, issue_id=issue.id,
                      now=DAY1 + timedelta(days=day))  # fmt: skip
    policy.record("bo@example.org", "hard", "550 5.1.1 user unknown", BounceSource.SMTP,
                  issue_id=issue.id)  # fmt: skip
    policy.record("cy@example.org", "complaint", "abuse report", BounceSource.MAILBOX)
    subject = "Re: Weekly - a very long subject line a person wrote back with, to see it wrap"
    policy.take_message(unreadable(subject), BounceSource.LMTP)
    services.create_user(ADMIN, PASSWORD)
    return int(ada.id)


@pytest.mark.browser
def test_bounces_page_and_subscriber_events(
    app: Flask, live_url: str, sized_page: Page, tmp_path: Path
) -> None:
    page = sized_page
    ada_id = seed()
    shot = Shots(page, tmp_path / "shots")
    requested: list[str] = []
    page.context.on("request", lambda request: requested.append(request.url))

    log_in(page, live_url, ADMIN, PASSWORD)

    page.goto(f"{live_url}/admin/bounces")
    assert "Messages to read" in page.inner_text("body")
    shot("bounces")
    page.fill("input[name=score_threshold]", "4")
    with page.expect_navigation():
        page.locator("form[action$='/bounces'] button[type=submit]").click()
    assert "Bounce policy saved." in page.inner_text("body")

    with page.expect_navigation():
        page.locator("a", has_text="Read").first.click()
    assert "Please call me about this." in page.inner_text("pre")
    shot("unread")
    page.select_option("select[name=kind]", "dismiss")
    with page.expect_navigation():
        page.locator("form[action$='/resolve'] button[type=submit]").click()
    assert "Dismissed." in page.inner_text("body")

    page.goto(f"{live_url}/admin/subscribers/{ada_id}")
    assert page.locator("table.bounce-events tbody tr").count() == 5
    shot("subscriber-events")
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.locator("form[action$='/reinstate'] button").click()
    assert "Reinstated" in page.inner_text("body")
    shot("reinstated")

    db.session.remove()
    subscriber = db.session.get(Subscriber, ada_id)
    assert subscriber is not None
    assert (subscriber.status, subscriber.bounce_score) == (SubscriberStatus.ACTIVE, 0)
    assert settings.current().score_threshold == 4
    assert [url for url in requested if urlsplit(url).hostname != "127.0.0.1"] == []
