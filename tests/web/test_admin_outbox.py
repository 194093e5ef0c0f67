"""The outbox browser: with no SMTP relay, mail is kept in a Maildir the admin can read."""

from __future__ import annotations

import mailbox
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from newsletter.mail.message import build_simple_message
from tests.web.admin_browser import logged_in_admin

CONFIRM_URL = "https://news.example.org/confirm/abc.def"


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    app_config["SMTP_URL"] = None  # the embedded default: the outbox
    return app_config


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A browser logged in as an admin."""
    return logged_in_admin(app)


def put_in_outbox(app: Flask, *, subject: str, html: str | None) -> str:
    message = build_simple_message(
        to="ada@example.org",
        subject=subject,
        text=f"Please confirm: {CONFIRM_URL}\n",
        html=html,
        from_address=app.config["FROM_ADDRESS"],
    )
    folder = mailbox.Maildir(app.config["OUTBOX_PATH"], create=True)
    return str(folder.add(message))


def test_outbox_is_in_the_nav_and_lists_messages(app: Flask, client: FlaskClient) -> None:
    put_in_outbox(app, subject="Confirm your subscription", html=None)
    dashboard = client.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/outbox"' in dashboard
    page = client.get("/admin/outbox").get_data(as_text=True)
    assert "Confirm your subscription" in page
    assert "ada@example.org" in page


def test_an_empty_outbox_says_so(app: Flask, client: FlaskClient) -> None:
    assert "The outbox is empty" in client.get("/admin/outbox").get_data(as_text=True)


def test_a_message_shows_headers_text_with_links_and_framed_html(
    app: Flask, client: FlaskClient
) -> None:
    key = put_in_outbox(
        app,
        subject="Confirm your subscription",
        html=f'<html><head></head><body><a href="{CONFIRM_URL}">Confirm</a>'
        "<script>alert(1)</script></body></html>",
    )
    page = client.get(f"/admin/outbox/{key}").get_data(as_text=True)
    assert "Confirm your subscription" in page
    assert "Message-ID" in page
    assert re.search(rf'<a href="{re.escape(CONFIRM_URL)}"[^>]*target="_blank"', page)
    assert re.search(r"<iframe[^>]*\bsandbox\b", page)

    framed = client.get(f"/admin/outbox/{key}/html")
    assert framed.status_code == 200
    assert "default-src 'none'" in framed.headers["Content-Security-Policy"]
    body = framed.get_data(as_text=True)
    assert '<base target="_blank">' in body
    assert CONFIRM_URL in body


def test_an_unknown_message_is_a_404(app: Flask, client: FlaskClient) -> None:
    put_in_outbox(app, subject="x", html=None)
    assert client.get("/admin/outbox/no-such-key").status_code == 404
    assert client.get("/admin/outbox/..%2F..%2Fsecret_key").status_code == 404


def test_with_an_smtp_relay_there_is_no_outbox(app: Flask, client: FlaskClient) -> None:
    app.config["SMTP_URL"] = "smtp://127.0.0.1:2525"
    assert 'href="/admin/outbox"' not in client.get("/admin/").get_data(as_text=True)
    assert client.get("/admin/outbox").status_code == 404
