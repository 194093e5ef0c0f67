"""Admin pages: login required, login and logout, sessions that end, one's own password,
first-admin setup, CSRF, rate limits and login throttling."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient

from newsletter.auth import services, sessions, totp
from newsletter.auth.throttle import throttle
from tests.helpers import csrf_token_from
from tests.web.admin_browser import EMAIL, PASSWORD, as_browser, log_in, token_for

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


# --- sessions that end (issue 9: "Logging out does not end the session") ----------------

HOST = "news.example.org"


def session_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("session", domain=HOST)
    assert cookie is not None, "the browser holds no session cookie"
    return cookie.value


def browser_with_cookie(app: Flask, value: str) -> FlaskClient:
    """Another browser, holding a copy of a session cookie (as a thief would)."""
    other = as_browser(app.test_client())
    other.set_cookie("session", value, domain=HOST)
    return other


def test_a_session_cookie_copied_before_logout_no_longer_opens_the_admin(
    app: Flask, client: FlaskClient
) -> None:
    services.create_user(EMAIL, PASSWORD)
    log_in(client)
    copied = session_cookie(client)
    assert browser_with_cookie(app, copied).get("/admin/").status_code == 200
    page = client.get("/admin/").get_data(as_text=True)
    client.post("/admin/logout", data={"csrf_token": csrf_token_from(page)})
    response = browser_with_cookie(app, copied).get("/admin/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login")


def test_logging_out_ends_the_users_sessions_on_other_devices_too(
    app: Flask, client: FlaskClient
) -> None:
    services.create_user(EMAIL, PASSWORD)
    laptop = as_browser(app.test_client())
    log_in(laptop)
    log_in(client)
    page = client.get("/admin/").get_data(as_text=True)
    client.post("/admin/logout", data={"csrf_token": csrf_token_from(page)})
    assert laptop.get("/admin/").status_code == 302


def test_a_session_from_before_logout_can_log_in_again(app: Flask, client: FlaskClient) -> None:
    services.create_user(EMAIL, PASSWORD)
    log_in(client)
    page = client.get("/admin/").get_data(as_text=True)
    client.post("/admin/logout", data={"csrf_token": csrf_token_from(page)})
    assert log_in(client).status_code == 302
    assert client.get("/admin/").status_code == 200


class Clock:
    """The sessions' clock, moved by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta).total_seconds()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(sessions, "clock", fake)
    return fake


def test_a_session_unused_for_30_minutes_ends(
    app: Flask, client: FlaskClient, clock: Clock
) -> None:
    services.create_user(EMAIL, PASSWORD)
    log_in(client)
    clock.advance(minutes=29)
    assert client.get("/admin/").status_code == 200
    clock.advance(minutes=29)  # 29 minutes since the last request: still alive
    assert client.get("/admin/").status_code == 200
    clock.advance(minutes=31)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login")
    login_page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Your session has ended" in login_page


def test_a_session_in_use_ends_12_hours_after_the_login(
    app: Flask, client: FlaskClient, clock: Clock
) -> None:
    services.create_user(EMAIL, PASSWORD)
    log_in(client)
    for _ in range(11 * 3):  # a request every 20 minutes for 11 hours
        clock.advance(minutes=20)
        assert client.get("/admin/").status_code == 200
    clock.advance(minutes=61)
    assert client.get("/admin/").status_code == 302


def test_polling_the_progress_does_not_keep_a_session_alive(
    app: Flask, client: FlaskClient, clock: Clock
) -> None:
    services.create_user(EMAIL, PASSWORD)
    log_in(client)
    for _ in range(2):  # the status page polls; nobody touches the admin for 31 minutes
        clock.advance(minutes=10)
        assert client.get("/admin/issues/1/progress").status_code == 404  # no such issue
    clock.advance(minutes=11)
    assert client.get("/admin/issues/1/progress").status_code == 401


def test_the_session_timeouts_are_settings(
    app_config: dict[str, Any], request: pytest.FixtureRequest, clock: Clock
) -> None:
    app_config.update(SESSION_IDLE_MINUTES=5, SESSION_MAX_HOURS=1)
    app: Flask = request.getfixturevalue("app")
    client = as_browser(app.test_client())
    services.create_user(EMAIL, PASSWORD)
    log_in(client)
    clock.advance(minutes=4)
    assert client.get("/admin/").status_code == 200
    clock.advance(minutes=6)
    assert client.get("/admin/").status_code == 302


@pytest.mark.parametrize("name", ["SESSION_IDLE_MINUTES", "SESSION_MAX_HOURS"])
@pytest.mark.parametrize("value", [0, -1, "soon"])
def test_a_timeout_that_cannot_work_stops_the_app(
    app_config: dict[str, Any], name: str, value: object
) -> None:
    from newsletter import create_app
    from newsletter.errors import ConfigError

    app_config[name] = value
    with pytest.raises(ConfigError) as raised:
        create_app(app_config)
    assert raised.value.setting == f"NEWSLETTER_{name}"


def test_changing_the_password_keeps_this_session_and_ends_the_others(
    app: Flask, client: FlaskClient
) -> None:
    services.create_user(EMAIL, PASSWORD)
    laptop = as_browser(app.test_client())
    log_in(laptop)
    log_in(client)
    new = "a brand new passphrase"
    response = client.post(
        "/admin/password",
        data={"current": PASSWORD, "password": new, "confirm": new,
              "csrf_token": token_for(client, "/admin/password")},
    )
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200
    assert laptop.get("/admin/").status_code == 302
    assert services.authenticate(EMAIL, new) is not None
    assert services.authenticate(EMAIL, PASSWORD) is None


def test_changing_the_password_needs_the_current_one(app: Flask, client: FlaskClient) -> None:
    services.create_user(EMAIL, PASSWORD)
    log_in(client)
    new = "a brand new passphrase"
    response = client.post(
        "/admin/password",
        data={"current": "not my password", "password": new, "confirm": new,
              "csrf_token": token_for(client, "/admin/password")},
    )
    assert response.status_code == 422
    assert "not your current password" in response.get_data(as_text=True)
    assert services.authenticate(EMAIL, PASSWORD) is not None


# --- login throttling ---------------------------------------------------------------------


@pytest.fixture
def login_clock(app: Flask) -> Clock:
    fake = Clock()
    throttle().clock = fake
    return fake


def attempts(client: FlaskClient, email: str, password: str, times: int) -> list[int]:
    return [log_in(client, email=email, password=password).status_code for _ in range(times)]


def test_failed_logins_lock_the_account_with_a_growing_wait(
    app: Flask, client: FlaskClient, login_clock: Clock
) -> None:
    services.create_user(EMAIL, PASSWORD)
    assert attempts(client, EMAIL, "wrong guess", 5) == [401] * 5
    # Locked now: even the right password is not checked until the wait is over.
    refused = log_in(client)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "2"
    assert "Too many failed attempts" in refused.get_data(as_text=True)
    login_clock.advance(seconds=3)
    assert attempts(client, EMAIL, "wrong guess", 1) == [401]
    assert log_in(client).headers["Retry-After"] == "4"  # twice as long after each failure
    login_clock.advance(seconds=5)
    assert log_in(client).status_code == 302


def test_a_success_starts_the_accounts_count_again(
    app: Flask, client: FlaskClient, login_clock: Clock
) -> None:
    services.create_user(EMAIL, PASSWORD)
    assert attempts(client, EMAIL, "wrong guess", 4) == [401] * 4
    assert log_in(client).status_code == 302
    other = as_browser(app.test_client())
    assert attempts(other, EMAIL, "wrong guess", 5) == [401] * 5


def test_an_unknown_address_is_throttled_exactly_like_a_real_one(
    app: Flask, client: FlaskClient, login_clock: Clock
) -> None:
    services.create_user(EMAIL, PASSWORD)
    known = attempts(client, EMAIL, "wrong guess", 6)
    unknown = attempts(client, "nobody@example.org", "wrong guess", 6)
    assert known == unknown == [401] * 5 + [429]


def test_one_client_address_guessing_many_accounts_is_throttled(
    app: Flask, login_clock: Clock
) -> None:
    guesser = as_browser(app.test_client())
    guesser.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    statuses = [
        log_in(guesser, email=f"person{n}@example.org", password="wrong guess").status_code
        for n in range(21)
    ]
    assert statuses == [401] * 20 + [429]
    elsewhere = as_browser(app.test_client())
    elsewhere.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    assert log_in(elsewhere, email="person0@example.org", password="x").status_code == 401


def test_a_login_through_the_second_factor_ends_at_logout_too(
    app: Flask, client: FlaskClient
) -> None:
    user = services.create_user(EMAIL, PASSWORD)
    secret = totp.pending_secret(user)
    totp.confirm_enrolment(user, pyotp.TOTP(secret).now())
    assert log_in(client).headers["Location"] == "/admin/login/code"
    next_code = pyotp.TOTP(secret).at(time.time() + totp.PERIOD)  # the first one is spent
    sent = client.post("/admin/login/code", data={
        "code": next_code, "csrf_token": token_for(client, "/admin/login/code")})
    assert sent.status_code == 302
    copied = session_cookie(client)
    assert browser_with_cookie(app, copied).get("/admin/").status_code == 200
    client.post("/admin/logout", data={"csrf_token": token_for(client, "/admin/")})
    assert browser_with_cookie(app, copied).get("/admin/").status_code == 302
