"""Admin pages: login required, login and logout, first-admin setup, CSRF, rate limit."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from newsletter.auth import services
from tests.helpers import csrf_token_from
from tests.web.admin_browser import EMAIL, PASSWORD, as_browser, log_in

ADMIN_PAGES = [
    "/admin/",
    "/admin/lists",
    "/admin/subscribers",
    "/admin/subscribers/new",
    "/admin/subscribers/import",
    "/admin/statements",
    "/admin/statements/1",
    "/admin/issues",
    "/admin/issues/new",
    "/admin/issues/1",
    "/admin/issues/1/edit",
    "/admin/issues/1/preview.html",
    "/admin/outbox",
]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client that behaves like a browser on this site."""
    return as_browser(app.test_client())


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_admin_pages_send_strangers_to_the_login_page(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login?next=")


def test_progress_endpoint_answers_401_to_strangers(client: FlaskClient) -> None:
    response = client.get("/admin/issues/1/progress")
    assert response.status_code == 401
    assert response.is_json


def test_login_with_the_right_password_opens_the_dashboard(
    app: Flask, client: FlaskClient
) -> None:
    services.create_user(EMAIL, PASSWORD)
    response = log_in(client)
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"
    page = client.get("/admin/").get_data(as_text=True)
    assert "Dashboard" in page
    assert EMAIL in page


def test_login_with_a_wrong_password_fails(app: Flask, client: FlaskClient) -> None:
    services.create_user(EMAIL, PASSWORD)
    response = log_in(client, password="not the password")
    assert response.status_code == 401
    assert "do not match" in response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_login_for_an_unknown_address_says_the_same(app: Flask, client: FlaskClient) -> None:
    services.create_user(EMAIL, PASSWORD)
    wrong_password = log_in(client, password="not the password").get_data(as_text=True)
    unknown = log_in(client, email="nobody@example.org").get_data(as_text=True)
    assert "do not match" in wrong_password
    assert "do not match" in unknown


def test_login_returns_to_the_page_asked_for(app: Flask, client: FlaskClient) -> None:
    services.create_user(EMAIL, PASSWORD)
    login_url = client.get("/admin/issues").headers["Location"]
    token = csrf_token_from(client.get(login_url).get_data(as_text=True))
    response = client.post(
        login_url, data={"email": EMAIL, "password": PASSWORD, "csrf_token": token}
    )
    assert response.headers["Location"] == "/admin/issues"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil"])
def test_login_never_redirects_to_another_site(
    app: Flask, client: FlaskClient, target: str
) -> None:
    services.create_user(EMAIL, PASSWORD)
    token = csrf_token_from(client.get("/admin/login").get_data(as_text=True))
    response = client.post(
        "/admin/login",
        query_string={"next": target},
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/admin/"


def test_logout_is_a_post_and_ends_the_session(app: Flask, client: FlaskClient) -> None:
    services.create_user(EMAIL, PASSWORD)
    log_in(client)
    page = client.get("/admin/").get_data(as_text=True)
    assert client.get("/admin/logout").status_code == 405
    response = client.post("/admin/logout", data={"csrf_token": csrf_token_from(page)})
    assert response.headers["Location"] == "/admin/login"
    assert client.get("/admin/").status_code == 302


def test_login_form_without_csrf_token_is_refused(app: Flask, client: FlaskClient) -> None:
    services.create_user(EMAIL, PASSWORD)
    response = client.post("/admin/login", data={"email": EMAIL, "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/admin/").status_code == 302


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/admin/logout", {}),
        ("/admin/lists", {"slug": "news", "name": "News", "optin": "double"}),
        ("/admin/subscribers/new", {"email": "a@example.org", "lists": "news"}),
        ("/admin/statements", {"markdown": "---\ntitle: T\n---\nBody"}),
        ("/admin/issues/new", {"subject": "S"}),
        ("/admin/issues/1/send", {}),
    ],
)
def test_admin_forms_without_csrf_token_are_refused(
    app: Flask, client: FlaskClient, path: str, data: dict[str, str]
) -> None:
    services.create_user(EMAIL, PASSWORD)
    log_in(client)
    assert client.post(path, data=data).status_code == 400
    assert client.post(path, data={**data, "csrf_token": "forged"}).status_code == 400


def test_login_is_rate_limited(app_config: dict[str, Any]) -> None:
    from newsletter import create_app

    app_config.update(
        RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="memory://", RATELIMIT_LOGIN="3 per minute"
    )
    app = create_app(app_config)
    client = app.test_client()
    with app.app_context():
        from newsletter.extensions import db

        db.create_all()
        statuses = [log_in(client, password="guess number one").status_code for _ in range(4)]
        db.session.remove()
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3] == 429


def _setup_path(app: Flask) -> str:
    url = services.first_admin_setup_url()
    return url.removeprefix(app.config["BASE_URL"])


def test_setup_link_makes_the_first_admin_and_logs_them_in(
    app: Flask, client: FlaskClient
) -> None:
    path = _setup_path(app)
    page = client.get(path)
    assert page.status_code == 200
    assert "Create the first admin" in page.get_data(as_text=True)
    response = client.post(
        path,
        data={
            "email": "first@example.org",
            "password": PASSWORD,
            "confirm": PASSWORD,
            "csrf_token": csrf_token_from(page.get_data(as_text=True)),
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"
    assert "first@example.org" in client.get("/admin/").get_data(as_text=True)
    assert services.authenticate("first@example.org", PASSWORD) is not None


def test_setup_link_works_only_once(app: Flask, client: FlaskClient) -> None:
    path = _setup_path(app)
    token = csrf_token_from(client.get(path).get_data(as_text=True))
    data = {"email": "first@example.org", "password": PASSWORD, "confirm": PASSWORD}
    assert client.post(path, data={**data, "csrf_token": token}).status_code == 302
    other = as_browser(app.test_client())
    again = other.get(path)
    assert again.status_code == 404
    assert "Log in" in again.get_data(as_text=True)
    second = client.post(
        path, data={**data, "email": "second@example.org", "csrf_token": token}
    )
    assert second.status_code == 404
    assert services.authenticate("second@example.org", PASSWORD) is None


def test_setup_link_does_nothing_once_a_user_exists(app: Flask, client: FlaskClient) -> None:
    path = _setup_path(app)
    services.create_user(EMAIL, PASSWORD)
    assert client.get(path).status_code == 404


def test_a_forged_setup_link_is_refused(app: Flask, client: FlaskClient) -> None:
    assert client.get("/admin/setup/forged-token").status_code == 404


def test_setup_form_checks_the_password(app: Flask, client: FlaskClient) -> None:
    path = _setup_path(app)
    token = csrf_token_from(client.get(path).get_data(as_text=True))
    response = client.post(
        path,
        data={"email": "first@example.org", "password": "short", "confirm": "short",
              "csrf_token": token},
    )
    assert response.status_code == 422
    assert "at least 10 characters" in response.get_data(as_text=True)
    assert services.needs_first_admin()
