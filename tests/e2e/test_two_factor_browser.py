"""Two factors in a real browser: enrol TOTP from the profile, then log in with a code.

The authenticator app is pyotp here, fed the secret the page shows for manual entry; the
QR code beside it must be drawn by the server (nothing is fetched from another host).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pyotp
import pytest
from flask import Flask

from newsletter.auth import services, totp
from newsletter.extensions import db
from tests.e2e.helpers import BrowserSession, Console, page_text, submit

if TYPE_CHECKING:
    from playwright.sync_api import Page

EMAIL = "editor@example.org"
PASSWORD = "correct horse battery"


def log_in_with_password(session: BrowserSession, live_url: str) -> None:
    page = session.page
    page.goto(f"{live_url}/admin/login")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    submit(session, "main form[method=post] button[type=submit]")


@pytest.mark.browser
def test_an_editor_enrols_totp_and_logs_in_with_a_code(
    app: Flask, live_url: str, session: BrowserSession
) -> None:
    services.create_user(EMAIL, PASSWORD)
    page = session.page
    console = Console(page)
    log_in_with_password(session, live_url)
    assert page.url == f"{live_url}/admin/"

    # From the profile to the enrolment page: a QR code drawn inline, and the secret as text.
    page.goto(f"{live_url}/admin/profile")
    with page.expect_navigation():
        page.click("text=Two-factor authentication")
    assert page.locator("figure.qr svg").is_visible()
    secret = page.inner_text("#totp-secret").replace(" ", "")
    app_on_the_phone = pyotp.TOTP(secret)
    page.fill("input[name=code]", app_on_the_phone.now())
    submit(session, "main form[method=post] button[type=submit]")

    codes = page.locator(".recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    assert "shown only now" in page_text(session)
    db.session.remove()
    user = services.find_user(EMAIL)
    assert user is not None and totp.is_enabled(user)

    with page.expect_navigation():
        page.click("text=I have saved them")
    submit(session, "form.nav-logout button")
    assert "logged out" in page_text(session)

    # The password alone now leads to the code step, not into the admin.
    log_in_with_password(session, live_url)
    assert page.url == f"{live_url}/admin/login/code"
    assert page.goto(f"{live_url}/admin/lists").url.startswith(f"{live_url}/admin/login")
    log_in_with_password(session, live_url)

    # The code of the enrolment is used up; the app's next one (within the drift) logs in.
    page.fill("input[name=code]", app_on_the_phone.at(time.time() + totp.PERIOD))
    submit(session, "main form[method=post] button[type=submit]")
    assert page.url == f"{live_url}/admin/"
    assert "dashboard" in page_text(session)

    assert session.foreign_requests() == []
    assert console.take() == []  # no CSP violation, script error or failed load


@pytest.mark.browser
def test_the_security_pages_work_under_the_content_security_policy(
    app: Flask, live_url: str, sized_page: Page
) -> None:
    page, console = sized_page, Console(sized_page)
    viewport = page.viewport_size["width"] if page.viewport_size else 0
    services.create_user(EMAIL, PASSWORD)
    page.goto(f"{live_url}/admin/login")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.locator("main form [type=submit]").click()
    for path in ["/admin/profile", "/admin/profile/two-factor", "/admin/profile/tokens",
                 "/admin/settings"]:  # fmt: skip
        response = page.goto(live_url + path)
        assert response is not None and response.ok, path
        assert "content-security-policy" in response.headers
        assert console.take() == [], f"the browser complained on {path}"
        # Nothing sticks out sideways, at a phone's width or a laptop's.
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport, path
