"""Acting on the admin pages as a browser would: a same-site Referer, CSRF tokens, a login."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from newsletter.auth import services
from tests.helpers import csrf_token_from

EMAIL = "editor@example.org"
PASSWORD = "correct horse battery"


def as_browser(client: FlaskClient) -> FlaskClient:
    """Send a same-site Referer, as browsers do: on https, Flask-WTF checks it with the token."""
    client.environ_base["HTTP_REFERER"] = "https://news.example.org/admin/"
    return client


def log_in(client: FlaskClient, email: str = EMAIL, password: str = PASSWORD) -> Any:
    """Post the login form as a browser would, CSRF token included."""
    as_browser(client)
    token = csrf_token_from(client.get("/admin/login").get_data(as_text=True))
    return client.post(
        "/admin/login", data={"email": email, "password": password, "csrf_token": token}
    )


def logged_in_admin(app: Flask) -> FlaskClient:
    """A browser logged in as a new admin."""
    client = as_browser(app.test_client())
    services.create_user(EMAIL, PASSWORD)
    assert log_in(client).status_code == 302
    return client


def token_for(client: FlaskClient, path: str) -> str:
    """The CSRF token of the form on the page at ``path``."""
    return csrf_token_from(client.get(path).get_data(as_text=True))
