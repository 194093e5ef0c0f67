"""Two factors in the admin pages: enrolling, the code step of the login, recovery codes,
turning it off, and the admin's switch that requires it of everyone."""

from __future__ import annotations

import re
import time
from typing import Any

import pyotp
import pytest
from flask import Flask, g
from flask.testing import FlaskClient
from sqlalchemy import select

from newsletter.audience.models import MailingList
from newsletter.auth import services, site_settings, totp
from newsletter.auth.models import AuditEvent, Role, User
from newsletter.extensions import db
from newsletter.web.admin import factors
from tests.web import admin_browser
from tests.web.admin_browser import EMAIL, PASSWORD, as_browser

RECOVERY_CODE = re.compile(r"<code>([a-z2-9]{5}-[a-z2-9]{5})</code>")


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return as_browser(app.test_client())


def token_for(client: FlaskClient, path: str) -> str:
    """The CSRF token of the page at ``path`` for this client's own session.

    Flask-WTF caches the token in ``g``, which every client shares inside the test's app
    context; dropping it lets several browsers take turns, as they would in life.
    """
    g.pop("csrf_token", None)
    return admin_browser.token_for(client, path)


def log_in(client: FlaskClient, password: str = PASSWORD) -> Any:
    g.pop("csrf_token", None)
    return admin_browser.log_in(client, password=password)


def code(secret: str, offset: int = 0) -> str:
    """The code an authenticator app shows, ``offset`` steps from now."""
    return pyotp.TOTP(secret).at(time.time() + offset * totp.PERIOD)


def user_row(email: str = EMAIL) -> User:
    db.session.expire_all()
    user = services.find_user(email)
    assert user is not None
    return user


def enrol(client: FlaskClient) -> tuple[str, list[str]]:
    """Enrol the logged-in user through the pages; their secret and recovery codes."""
    page = client.get("/admin/profile/two-factor").get_data(as_text=True)
    secret = user_row().totp_secret
    assert secret
    response = client.post(
        "/admin/profile/two-factor",
        data={
            "code": code(secret, -1),
            "csrf_token": token_for(client, "/admin/profile/two-factor"),
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "<svg" in page
    return secret, RECOVERY_CODE.findall(response.get_data(as_text=True))


def enrolled_user(app: Flask) -> tuple[str, list[str]]:
    """A user with the factor on (logged out again); their secret and recovery codes."""
    client = as_browser(app.test_client())
    services.create_user(EMAIL, PASSWORD)
    assert log_in(client).status_code == 302
    return enrol(client)


def send_code(client: FlaskClient, value: str) -> Any:
    return client.post(
        "/admin/login/code", data={"code": value, "csrf_token": token_for(client, "/admin/login")}
    )


def logged_in(client: FlaskClient) -> bool:
    return client.get("/admin/").status_code == 200


# --- enrolment ----------------------------------------------------------------------------


def test_enrolment_shows_a_qr_code_drawn_here_and_the_secret_as_text(
    app: Flask, client: FlaskClient
) -> None:
    services.create_user(EMAIL, PASSWORD)
    log_in(client)
    response = client.get("/admin/profile/two-factor")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    secret = user_row().totp_secret
    assert secret and " ".join(secret[i : i + 4] for i in range(0, 32, 4)) in page
    assert '<svg width="' in page  # inline, no image from anywhere
    assert "otpauth://" not in page  # the URI is in the QR code only
    assert not re.search(r'src="https?://', page)
    assert not totp.is_enabled(user_row())  # a look at the page turns nothing on


def test_a_wrong_first_code_leaves_the_factor_off(app: Flask, client: FlaskClient) -> None:
    services.create_user(EMAIL, PASSWORD)
    log_in(client)
    client.get("/admin/profile/two-factor")
    response = client.post(
        "/admin/profile/two-factor",
        data={"code": "12345", "csrf_token": token_for(client, "/admin/profile")},
    )
    assert response.status_code == 422
    assert "that code is wrong" in response.get_data(as_text=True).lower()
    assert not totp.is_enabled(user_row())


def test_the_first_code_turns_it_on_and_shows_ten_recovery_codes_once(
    app: Flask, client: FlaskClient
) -> None:
    services.create_user(EMAIL, PASSWORD)
    log_in(client)
    _, codes = enrol(client)
    assert len(codes) == 10
    assert totp.is_enabled(user_row())
    later = client.get("/admin/profile/two-factor").get_data(as_text=True)
    assert not any(c in later for c in codes)
    assert "10</strong> unused recovery codes" in later


# --- the login ----------------------------------------------------------------------------


def test_the_password_alone_does_not_log_in(app: Flask, client: FlaskClient) -> None:
    enrolled_user(app)
    response = log_in(client)
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/login/code"
    assert not logged_in(client)
    assert client.get("/admin/lists").headers["Location"].startswith("/admin/login")


def test_the_code_after_the_password_logs_in_and_goes_where_asked(
    app: Flask, client: FlaskClient
) -> None:
    secret, _ = enrolled_user(app)
    token = token_for(client, "/admin/login")
    client.post(
        "/admin/login?next=/admin/lists",
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": token},
    )
    response = send_code(client, code(secret))
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/lists"
    assert logged_in(client)


def test_a_wrong_code_is_refused_and_the_page_asks_again(app: Flask, client: FlaskClient) -> None:
    secret, _ = enrolled_user(app)
    log_in(client)
    wrong = f"{(int(code(secret)) + 500_000) % 1_000_000:06d}"
    response = send_code(client, wrong)
    assert response.status_code == 401
    assert "that code is wrong" in response.get_data(as_text=True).lower()
    assert not logged_in(client)


def test_a_code_used_to_log_in_cannot_log_in_again(app: Flask) -> None:
    secret, _ = enrolled_user(app)
    first, second = as_browser(app.test_client()), as_browser(app.test_client())
    used = code(secret, +1)  # the enrolment used the step before now
    log_in(first)
    assert send_code(first, used).status_code == 302
    log_in(second)
    response = send_code(second, used)
    assert response.status_code == 401
    assert "used already" in response.get_data(as_text=True)
    assert not logged_in(second)


def test_a_recovery_code_logs_in_once(app: Flask) -> None:
    _, codes = enrolled_user(app)
    first, second = as_browser(app.test_client()), as_browser(app.test_client())
    log_in(first)
    assert send_code(first, codes[0]).status_code == 302
    assert "9 left" in first.get("/admin/").get_data(as_text=True)
    log_in(second)
    assert send_code(second, codes[0]).status_code == 401
    assert not logged_in(second)


def test_code_attempts_are_limited_per_account(app: Flask) -> None:
    secret, _ = enrolled_user(app)
    for _ in range(totp.MAX_ATTEMPTS):
        attacker = as_browser(app.test_client())  # a fresh session each time changes nothing
        log_in(attacker)
        wrong = f"{(int(code(secret)) + 500_000) % 1_000_000:06d}"
        assert send_code(attacker, wrong).status_code == 401
    owner = as_browser(app.test_client())
    log_in(owner)
    response = send_code(owner, code(secret))
    assert response.status_code == 429
    assert "too many wrong codes" in response.get_data(as_text=True).lower()
    assert not logged_in(owner)


def test_the_code_step_needs_the_password_step_first(app: Flask, client: FlaskClient) -> None:
    secret, _ = enrolled_user(app)
    client.get("/admin/login")
    response = send_code(client, code(secret))
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/login"
    assert not logged_in(client)


def test_the_code_step_expires(app: Flask, client: FlaskClient) -> None:
    secret, _ = enrolled_user(app)
    log_in(client)
    with client.session_transaction() as session:  # the password was typed 5 minutes ago
        pending = session[factors.PENDING_KEY]
        session[factors.PENDING_KEY] = {
            **pending,
            "at": pending["at"] - factors.PENDING_SECONDS - 1,
        }
    response = send_code(client, code(secret))
    assert response.headers["Location"] == "/admin/login"
    assert not logged_in(client)


# --- turning it off, new codes ------------------------------------------------------------


def test_turning_it_off_takes_the_password_and_a_code(app: Flask, client: FlaskClient) -> None:
    secret, _ = enrolled_user(app)
    log_in(client)
    send_code(client, code(secret, +1))
    csrf = token_for(client, "/admin/profile/two-factor")
    refused = client.post(
        "/admin/profile/two-factor/disable",
        data={"password": "wrong password", "code": code(secret), "csrf_token": csrf},
    )
    assert refused.status_code == 422
    assert "that password is wrong" in refused.get_data(as_text=True).lower()
    assert totp.is_enabled(user_row())

    done = client.post(
        "/admin/profile/two-factor/disable",
        data={"password": PASSWORD, "code": code(secret), "csrf_token": csrf},
    )
    assert done.status_code == 302
    assert not totp.is_enabled(user_row())
    client.post("/admin/logout", data={"csrf_token": token_for(client, "/admin/")})
    assert log_in(client).headers["Location"] == "/admin/"  # the password is enough again


def test_new_recovery_codes_are_shown_once_for_a_code(app: Flask, client: FlaskClient) -> None:
    secret, old = enrolled_user(app)
    log_in(client)
    send_code(client, code(secret, +1))
    response = client.post(
        "/admin/profile/two-factor/recovery-codes",
        data={"code": old[0], "csrf_token": token_for(client, "/admin/profile/two-factor")},
    )
    new = RECOVERY_CODE.findall(response.get_data(as_text=True))
    assert len(new) == 10 and not set(new) & set(old)


# --- requiring it of everyone -------------------------------------------------------------


def require_two_factor() -> None:
    site_settings.set_setting(site_settings.REQUIRE_TWO_FACTOR, True)


def test_only_an_admin_opens_the_site_settings(app: Flask, client: FlaskClient) -> None:
    services.create_user(EMAIL, PASSWORD, role=Role.EDITOR)
    log_in(client)
    assert client.get("/admin/settings").status_code == 403
    response = client.post(
        "/admin/settings",
        data={"require_two_factor": "y", "csrf_token": token_for(client, "/admin/profile")},
    )
    assert response.status_code == 403
    assert not site_settings.two_factor_required()


def test_an_admin_requires_it_only_once_they_have_it(app: Flask, client: FlaskClient) -> None:
    services.create_user(EMAIL, PASSWORD)
    log_in(client)
    data = {"require_two_factor": "y", "csrf_token": token_for(client, "/admin/settings")}
    refused = client.post("/admin/settings", data=data)
    assert refused.status_code == 422
    assert "for yourself first" in refused.get_data(as_text=True)
    assert not site_settings.two_factor_required()

    enrol(client)
    assert client.post("/admin/settings", data=data).status_code == 302
    assert site_settings.two_factor_required()
    page = client.get("/admin/settings").get_data(as_text=True)
    checkbox = re.search(r'<input[^>]*name="require_two_factor"[^>]*>', page)
    assert checkbox and " checked" in checkbox.group(0)


def test_when_required_someone_without_it_can_only_enrol(app: Flask, client: FlaskClient) -> None:
    services.create_user(EMAIL, PASSWORD, role=Role.ADMIN)  # whose role allows every page
    require_two_factor()
    response = log_in(client)
    assert response.status_code == 302
    for path in ["/admin/", "/admin/lists", "/admin/profile", "/admin/profile/tokens"]:
        sent = client.get(path)
        assert sent.status_code == 302, path
        assert sent.headers["Location"] == "/admin/profile/two-factor"
    assert client.get("/admin/issues/1/progress").status_code == 403
    made = client.post(
        "/admin/lists",
        data={"slug": "news", "name": "News", "optin": "double", "csrf_token": token_for(
            client, "/admin/profile/two-factor")},
    )  # fmt: skip
    assert made.headers["Location"] == "/admin/profile/two-factor"
    assert db.session.scalars(select(MailingList)).all() == []
    assert (
        db.session.scalars(select(AuditEvent).where(AuditEvent.action == "admin.lists")).all() == []
    )
    assert "required" in client.get("/admin/profile/two-factor").get_data(as_text=True)

    enrol(client)
    assert logged_in(client)


def test_when_required_someone_with_it_logs_in_as_usual(app: Flask, client: FlaskClient) -> None:
    secret, _ = enrolled_user(app)
    require_two_factor()
    log_in(client)
    send_code(client, code(secret, +1))
    assert logged_in(client)
