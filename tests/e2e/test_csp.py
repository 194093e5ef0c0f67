"""The Content-Security-Policy in a real browser: the pages still work under it.

Headless Chromium opens the main admin and public pages at a phone's width and a laptop's,
and the test fails on anything the browser reports in its console: a CSP violation (an
inline script or style, a third-party file), a script error, a failed load. The admin script
must still run (the confirmation before sending, the progress poll), and nothing may be
fetched from another host. Screenshots land in ``<basetemp>/…/shots``; run with
``--basetemp=DIR`` to look at them.
"""

from __future__ import annotations

import mailbox
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from flask import Flask

from newsletter.audience.models import SubscriptionStatus
from newsletter.audience.tokens import confirm_url, manage_url, unsubscribe_url
from newsletter.auth import services
from newsletter.content.models import IssueStatus
from newsletter.mail.message import build_simple_message
from tests.e2e.helpers import Console
from tests.factories import make_issue, make_list, make_statement, make_subscriber

if TYPE_CHECKING:
    from playwright.sync_api import Page

ADMIN, PASSWORD = "admin@example.org", "correct horse battery"
# Mail HTML as it comes from MJML: a <style> block and inline styles, both allowed in frames.
MAIL_HTML = (
    "<html><head><style>h1 { color: #b3261e; }</style></head><body>"
    '<h1 style="font-family: sans-serif">Autumn statement</h1>'
    '<p style="margin: 0">Hello, and <a href="https://example.org/more">read more</a>.</p>'
    "</body></html>"
)


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {
        **app_config,
        "SMTP_URL": None,
    }


@dataclass
class Seeded:
    draft: int
    sending: int
    sent: int
    statement: int
    outbox_key: str
    manage: str
    unsubscribe: str
    confirm: str


def seed(app: Flask) -> Seeded:
    news = make_list("news", name="Movement News")
    reader = make_subscriber("ada@example.com", lists=(news,))
    newcomer = make_subscriber(
        "grace@example.com", lists=(news,), status=SubscriptionStatus.UNCONFIRMED
    )
    statement = make_statement(title="Autumn statement")
    draft = make_issue((statement,), (news,), subject="Draft issue")
    sending = make_issue((statement,), (news,), subject="Going out", status=IssueStatus.SENDING)
    sent = make_issue(
        (statement,), (news,), subject="Autumn", status=IssueStatus.SENT, rendered_html=MAIL_HTML
    )
    message = build_simple_message(
        to=newcomer.email,
        subject="Confirm your subscription",
        text="Please confirm.",
        html=MAIL_HTML,
        from_address=app.config["FROM_ADDRESS"],
    )
    outbox_key = mailbox.Maildir(app.config["OUTBOX_PATH"], create=True).add(message)
    services.create_user(ADMIN, PASSWORD)
    return Seeded(
        draft=draft.id,
        sending=sending.id,
        sent=sent.id,
        statement=statement.id,
        outbox_key=str(outbox_key),
        manage=urlsplit(manage_url(reader.id, version=0)).path,
        unsubscribe=urlsplit(unsubscribe_url(reader.id, news.id, version=0)).path,
        confirm=urlsplit(confirm_url(newcomer.id, news.id)).path,
    )


@pytest.mark.browser
def test_the_main_pages_work_under_the_content_security_policy(
    app: Flask, live_url: str, sized_page: Page, tmp_path: Path
) -> None:
    page = sized_page
    data = seed(app)
    console = Console(page)
    requested: list[str] = []
    page.context.on("request", lambda request: requested.append(request.url))
    width = page.viewport_size["width"] if page.viewport_size else 0
    shots = tmp_path / "shots" / str(width)

    def visit(path: str, name: str) -> None:
        response = page.goto(live_url + path)
        assert response is not None and response.ok, f"{path}: {response and response.status}"
        assert response.headers["content-security-policy"]
        page.screenshot(path=shots / f"{name}.png", full_page=True)
        assert console.take() == [], f"the browser complained on {path}"

    for path, name in (
        ("/subscribe", "subscribe"),
        ("/archive", "archive"),
        (f"/archive/{data.sent}", "archive-issue"),
        (data.manage, "manage"),
        (data.unsubscribe, "unsubscribe"),
        (data.confirm, "confirm"),
        ("/admin/login", "login"),
    ):
        visit(path, name)

    page.fill("input[name=email]", ADMIN)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.locator("form [type=submit]").first.click()
    assert urlsplit(page.url).path == "/admin/"

    for path, name in (
        ("/admin/", "dashboard"),
        ("/admin/issues", "issues"),
        ("/admin/issues/new", "issue-new"),
        (f"/admin/issues/{data.draft}/edit", "issue-edit"),
        ("/admin/statements", "statements"),
        (f"/admin/statements/{data.statement}", "statement"),
        ("/admin/lists", "lists"),
        ("/admin/subscribers", "subscribers"),
        ("/admin/subscribers/new", "subscriber-new"),
        ("/admin/subscribers/import", "import"),
        ("/admin/deliveries", "deliveries"),
        ("/admin/outbox", "outbox"),
        (f"/admin/outbox/{data.outbox_key}", "outbox-message"),
        ("/admin/profile", "profile"),
        ("/admin/audit", "audit"),  # the login above is its first event
    ):
        visit(path, name)

    # The issue page: its preview frame shows the mail, and admin.js asks before sending.
    visit(f"/admin/issues/{data.draft}", "issue-draft")
    frame = page.frame_locator("iframe.preview")
    assert "Autumn statement" in frame.locator("body").inner_text()
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.locator("form.send-form button").click()
    assert questions and "Send “Draft issue” now" in questions[0]
    assert urlsplit(page.url).path == f"/admin/issues/{data.draft}"  # dismissed: not sent

    # While sending, admin.js polls the progress (a fetch the policy must allow).
    with page.expect_response(lambda response: "/progress" in response.url) as polled:
        visit(f"/admin/issues/{data.sending}", "issue-sending")
    assert polled.value.ok
    assert console.take() == []

    foreign = [url for url in requested if urlsplit(url).hostname not in {"127.0.0.1", None}]
    assert foreign == [], "a page asked another host for something"
