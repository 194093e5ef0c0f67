"""Security headers on every kind of response: pages, mail frames, JSON, files, errors, feeds."""

from __future__ import annotations

import mailbox
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask, render_template_string
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from newsletter.audience.tokens import manage_url
from newsletter.auth import accounts, services
from newsletter.content.models import IssueStatus
from newsletter.mail.message import build_simple_message
from tests.factories import make_issue, make_list, make_statement, make_subscriber
from tests.helpers import csrf_token_from
from tests.web.admin_browser import EMAIL, logged_in_admin

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def policy(response: TestResponse) -> dict[str, str]:
    """The Content-Security-Policy as ``{directive: value}``."""
    header = response.headers.get("Content-Security-Policy")
    assert header, f"{response.request.path} has no Content-Security-Policy"
    pairs = (part.strip().partition(" ") for part in header.split(";") if part.strip())
    return {name: value for name, _, value in pairs}


def assert_common_headers(response: TestResponse, *, referrer: str = "same-origin") -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == referrer
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "X-Frame-Options" not in response.headers  # frame-ancestors says it, once


def assert_page_policy(response: TestResponse, *, referrer: str = "same-origin") -> None:
    """Our own pages: own files only, nothing inline, never framed."""
    assert response.mimetype == "text/html"
    csp = policy(response)
    assert csp["script-src"] == "'self'"
    assert csp["style-src"] == "'self'"
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert csp["frame-ancestors"] == "'none'"
    assert csp["object-src"] == "'none'"
    assert_common_headers(response, referrer=referrer)


def assert_mail_policy(response: TestResponse, *, framed: bool) -> None:
    """Mail HTML: inline styles allowed, no script or form, sandboxed."""
    csp = policy(response)
    assert csp["default-src"] == "'none'"
    assert "script-src" not in csp  # falls back to default-src 'none'
    assert csp["style-src"] == "'unsafe-inline'"
    assert csp["form-action"] == "'none'"
    assert csp["sandbox"].split() == ["allow-popups", "allow-popups-to-escape-sandbox"]
    assert csp["frame-ancestors"] == ("'self'" if framed else "'none'")
    assert_common_headers(response, referrer="no-referrer")


def assert_resource_policy(response: TestResponse) -> None:
    """Not HTML: nothing to run, nothing to frame."""
    assert policy(response) == {"default-src": "'none'", "frame-ancestors": "'none'"}
    assert_common_headers(response)


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    return logged_in_admin(app)


def sent_issue() -> Any:
    return make_issue(
        (make_statement(),),
        (make_list("news"),),
        subject="Autumn",
        status=IssueStatus.SENT,
        rendered_html='<html><body><h1 style="color: red">Autumn</h1></body></html>',
    )


@pytest.mark.parametrize("path", ["/subscribe", "/archive", "/admin/login", "/nowhere"])
def test_public_pages_and_the_not_found_page_carry_the_page_policy(
    client: FlaskClient, path: str
) -> None:
    assert_page_policy(client.get(path))


def test_admin_pages_carry_the_page_policy_and_stay_out_of_caches(admin: FlaskClient) -> None:
    for path in ("/admin/", "/admin/issues", "/admin/lists", "/admin/subscribers"):
        response = admin.get(path)
        assert response.status_code == 200, path
        assert_page_policy(response)
        assert response.headers["Cache-Control"] == "no-store"


def test_a_page_whose_path_holds_a_token_gives_only_this_origin_as_referrer(
    client: FlaskClient,
) -> None:
    news = make_list("news")
    reader = make_subscriber("ada@example.org", lists=(news,))
    user = services.create_user(EMAIL, "correct horse battery")
    paths = [urlsplit(url).path for url in (
        manage_url(reader.id, version=0), accounts.site_url_for_reset(user),
    )]  # fmt: skip
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, path
        assert_page_policy(response, referrer="strict-origin")
    # What a browser then sends with the form, and with the page's stylesheet: this origin,
    # no path. On https, Flask-WTF's Referer check still lets the form through.
    page = client.get(paths[1]).get_data(as_text=True)
    password = "another long password 456"
    response = client.post(
        paths[1],
        data={"password": password, "confirm": password, "csrf_token": csrf_token_from(page)},
        headers={"Referer": "https://news.example.org/"},
        base_url="https://news.example.org",
    )
    assert response.status_code == 302
    assert services.authenticate(EMAIL, password) is not None


def test_the_admin_not_found_page_carries_the_page_policy(admin: FlaskClient) -> None:
    response = admin.get("/admin/issues/999")
    assert response.status_code == 404
    assert_page_policy(response)


def test_the_issue_preview_frame_is_a_sandboxed_mail_document_the_admin_may_frame(
    admin: FlaskClient,
) -> None:
    issue = make_issue((make_statement(),), (make_list(),))
    page = admin.get(f"/admin/issues/{issue.id}")
    assert_page_policy(page)
    assert policy(page)["default-src"] == "'self'"  # which lets the page frame its preview

    frame = admin.get(f"/admin/issues/{issue.id}/preview.html")
    assert frame.status_code == 200
    assert_mail_policy(frame, framed=True)
    assert frame.headers["Cache-Control"] == "no-store"


def test_the_outbox_message_frame_is_a_sandboxed_mail_document(
    app: Flask, admin: FlaskClient
) -> None:
    message = build_simple_message(
        to="ada@example.org",
        subject="Hello",
        text="Hello",
        html='<html><head></head><body><p style="color: red">Hello</p></body></html>',
        from_address=app.config["FROM_ADDRESS"],
    )
    key = mailbox.Maildir(app.config["OUTBOX_PATH"], create=True).add(message)
    app.config["SMTP_URL"] = None  # the outbox is shown when mail goes there

    page, frame = admin.get(f"/admin/outbox/{key}"), admin.get(f"/admin/outbox/{key}/html")
    assert (page.status_code, frame.status_code) == (200, 200)
    assert_page_policy(page)
    assert_mail_policy(frame, framed=True)


def test_an_archived_issue_is_one_of_our_pages_nobody_may_frame(
    client: FlaskClient,
) -> None:
    issue = sent_issue()
    response = client.get(f"/archive/{issue.id}")
    assert response.status_code == 200
    assert_page_policy(response)


def test_the_atom_feed_carries_the_resource_policy(client: FlaskClient) -> None:
    sent_issue()
    response = client.get("/archive.atom")
    assert response.mimetype == "application/atom+xml"
    assert_resource_policy(response)


def test_api_answers_and_errors_carry_the_resource_policy(client: FlaskClient) -> None:
    services.create_user(EMAIL, "correct horse battery")
    token = services.create_api_token(EMAIL)
    auth = {"Authorization": f"Bearer {token}"}

    listed = client.get("/api/v1/lists", headers=auth)
    assert listed.status_code == 200 and listed.is_json
    assert_resource_policy(listed)
    for refused in (
        client.get("/api/v1/lists"),  # no token: 401
        client.get("/api/v1/nowhere", headers=auth),  # 404
        client.post("/api/v1/lists", headers=auth, json={"slug": "Not a slug!"}),  # 422
    ):
        assert refused.status_code >= 400 and refused.is_json
        assert_resource_policy(refused)


def test_static_files_are_not_sniffed(client: FlaskClient) -> None:
    for name, mimetype in (("style.css", "text/css"), ("admin.js", "text/javascript")):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200
        assert response.mimetype == mimetype
        assert_resource_policy(response)


def test_an_internal_error_page_carries_the_headers(app: Flask, client: FlaskClient) -> None:
    def broken() -> str:
        raise RuntimeError("boom")

    app.add_url_rule("/broken", view_func=broken)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # answer as in production: a 500 page
    response = client.get("/broken")
    assert response.status_code == 500
    assert_page_policy(response)


def test_no_hsts_when_the_site_is_served_over_plain_http(
    app_config: dict[str, Any],
) -> None:
    from newsletter import create_app

    app = create_app({**app_config, "BASE_URL": "http://127.0.0.1:5000", "SERVER_NAME": None})
    response = app.test_client().get("/static/style.css")
    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_an_inline_block_runs_only_with_this_requests_nonce(
    app: Flask, client: FlaskClient
) -> None:
    def inline() -> str:
        return render_template_string('<script nonce="{{ csp_nonce() }}">go()</script>')

    app.add_url_rule("/inline", view_func=inline)
    first, second = client.get("/inline"), client.get("/inline")
    nonces = []
    for response in (first, second):
        [nonce] = re.findall(r'nonce="([^"]+)"', response.get_data(as_text=True))
        assert policy(response)["script-src"] == f"'self' 'nonce-{nonce}'"
        nonces.append(nonce)
    assert nonces[0] != nonces[1]
    assert "nonce-" not in client.get("/subscribe").headers["Content-Security-Policy"]


# What the page policy forbids, found in the templates before a browser finds it. Mail
# documents (email/, and the preview's own error page) are served under the mail policy.
INLINE_CODE = re.compile(
    r"<script(?![^>]*\bsrc=)(?![^>]*\bnonce=)[^>]*>"  # an inline script without a nonce
    r"|<style(?![^>]*\bnonce=)[^>]*>"  # an inline stylesheet without a nonce
    r"|\sstyle\s*="  # a style attribute (no nonce can allow one)
    r"|\son[a-z]+\s*=",  # an event handler attribute
    re.IGNORECASE,
)
MAIL_TEMPLATES = {"admin/preview_error.html"}
EXTERNAL_URL = re.compile(r"""(?:src|href|action)\s*=\s*["']?(?:https?:)?//""", re.IGNORECASE)


def page_templates() -> list[str]:
    return sorted(
        str(path.relative_to(TEMPLATES))
        for path in TEMPLATES.rglob("*.html")
        if path.relative_to(TEMPLATES).parts[0] != "email"
    )


@pytest.mark.parametrize("name", page_templates())
def test_no_page_template_holds_inline_code_or_a_third_party_url(name: str) -> None:
    source = (TEMPLATES / name).read_text()
    if name not in MAIL_TEMPLATES:
        assert INLINE_CODE.findall(source) == []
    assert EXTERNAL_URL.findall(source) == []
