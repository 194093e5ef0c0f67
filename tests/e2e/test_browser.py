"""Signing up in a real browser: the form, the confirmation mail, the confirm button.

The app is served over HTTP on loopback and driven by headless Chromium, so this covers what
the test client cannot: the HTML form as a browser submits it (CSRF cookie and all), the
links in the mail leading back to the server, and that no page loads anything from
another host.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from newsletter.audience.models import Subscriber, SubscriptionStatus
from newsletter.extensions import db
from tests.e2e.helpers import BrowserSession, page_text, submit
from tests.smtp import CapturingSMTPServer

READER = "grace@example.com"


def subscription_status() -> SubscriptionStatus:
    """What the database says now (not what this session cached)."""
    db.session.remove()
    subscriber = db.session.query(Subscriber).filter_by(email=READER).one()
    [subscription] = subscriber.subscriptions
    return subscription.status


def text_part(message: Any) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "the confirmation mail has no text part"
    return str(part.get_content())


@pytest.mark.browser
def test_a_reader_signs_up_and_confirms_in_a_real_browser(
    app: Flask,
    live_url: str,
    session: BrowserSession,
    mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
) -> None:
    from newsletter.audience.lists import create_list

    create_list("news", "Movement News")  # public, double opt-in

    page = session.page
    page.goto(f"{live_url}/subscribe")
    page.fill("input[name=email]", READER)
    page.fill("input[name=name]", "Grace Hopper")
    page.check("input[name=lists][value=news]")
    submit(session, "form[method=post] [type=submit], form[method=post] button")

    # The same neutral answer whatever the address: look in your inbox.
    assert re.search(r"inbox|check your (e-?mail|mail)", page_text(session)), page_text(session)
    assert subscription_status() == SubscriptionStatus.UNCONFIRMED

    run_jobs()
    [confirmation] = mailbox.to(READER)
    link = re.search(
        rf"{re.escape(live_url)}/confirm/[^\s<>\"]+", text_part(confirmation.message)
    )
    assert link, "the confirmation mail carries no link back to this server"

    # Opening the link (as a mail scanner would) shows a page and confirms nothing.
    response = page.goto(link.group(0))
    assert response is not None and response.ok
    assert subscription_status() == SubscriptionStatus.UNCONFIRMED

    submit(session, "form[method=post] [type=submit], form[method=post] button")
    assert "confirm" in page_text(session)
    assert subscription_status() == SubscriptionStatus.CONFIRMED

    assert session.requested, "the browser recorded no requests at all"
    assert session.foreign_requests() == []
