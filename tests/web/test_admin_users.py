"""The users page (invite by mail, roles, permission to send, deactivation) and the password
reset by mail: signed, expiring, single-use links, and no answer that tells who has an
account."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous.timed import TimestampSigner

from newsletter.auth import accounts, services
from newsletter.auth.models import Role, User
from newsletter.errors import Conflict
from newsletter.extensions import db
from tests.helpers import csrf_token_from
from tests.smtp import CapturingSMTPServer
from tests.web.admin_browser import EMAIL, PASSWORD, as_browser, log_in, logged_in_admin, token_for

HOST = "news.example.org"
NEW_PASSWORD = "another long passphrase"
LINK = re.compile(r"https://news\.example\.org/admin/(?:invite|reset)/[\w.\-]+")


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    """A browser logged in as an admin (EMAIL)."""
    return logged_in_admin(app)


def user(email: str) -> User:
    db.session.expire_all()
    found = services.find_user(email)
    assert found is not None
    return found


def link_in_mail(mailbox: CapturingSMTPServer, address: str) -> str:
    """The one link in the last mail to ``address``, from its text part."""
    messages = mailbox.to(address)
    assert messages, f"no mail to {address}"
    body = messages[-1].message.get_body(preferencelist=("plain",))
    assert body is not None
    found = LINK.findall(body.get_content())
    assert len(found) == 1, body.get_content()
    return str(found[0])


def path_of(link: str) -> str:
    return link.removeprefix(f"https://{HOST}")


def set_password_through(client: FlaskClient, link: str, password: str = NEW_PASSWORD) -> Any:
    path = path_of(link)
    token = token_for(client, "/admin/login")  # any page's: a spent link's page has no form
    return client.post(path, data={"password": password, "confirm": password,
                                   "csrf_token": token})


def invite(admin: FlaskClient, email: str, role: str = "editor", **extra: str) -> Any:
    return admin.post(
        "/admin/users/invite",
        data={"email": email, "role": role, "csrf_token": token_for(admin, "/admin/users"),
              **extra},
    )


def press(admin: FlaskClient, path: str, **data: str) -> str:
    """Press a button on the users page; the page it leads back to."""
    response = admin.post(path, data={"csrf_token": token_for(admin, "/admin/users"), **data})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"] == "/admin/users"
    return admin.get("/admin/users").get_data(as_text=True)


def later(monkeypatch: pytest.MonkeyPatch, seconds: int) -> None:
    """Links are checked as if ``seconds`` had passed since they were signed."""
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) + seconds)


# --- invitations --------------------------------------------------------------------------


def test_an_invitee_chooses_their_own_password_through_the_mailed_link(
    app: Flask, admin: FlaskClient, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    response = invite(admin, "new@example.org", role="editor", can_send="y")
    assert response.status_code == 302
    page = admin.get("/admin/users").get_data(as_text=True)
    assert "new@example.org" in page and "invited" in page
    invited = user("new@example.org")
    assert (invited.role, invited.can_send) == (Role.EDITOR, True)
    assert services.authenticate("new@example.org", "") is None  # no password yet

    run_jobs()
    link = link_in_mail(mailbox, "new@example.org")
    invitee = as_browser(app.test_client())
    welcome = invitee.get(path_of(link)).get_data(as_text=True)
    assert "Choose a password for" in welcome and "new@example.org" in welcome
    assert set_password_through(invitee, link).headers["Location"] == "/admin/login"
    assert log_in(invitee, email="new@example.org", password=NEW_PASSWORD).status_code == 302
    assert invitee.get("/admin/issues/new").status_code == 200


def test_an_invitation_link_works_once(
    app: Flask, admin: FlaskClient, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    invite(admin, "new@example.org")
    run_jobs()
    link = link_in_mail(mailbox, "new@example.org")
    invitee = as_browser(app.test_client())
    set_password_through(invitee, link)
    again = invitee.get(path_of(link))
    assert again.status_code == 404
    assert "used already" in again.get_data(as_text=True)
    assert set_password_through(invitee, link, "a thief's password 1").status_code == 404
    assert services.authenticate("new@example.org", NEW_PASSWORD) is not None


def test_an_invitation_link_expires(
    app: Flask, admin: FlaskClient, mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None], monkeypatch: pytest.MonkeyPatch,
) -> None:
    invite(admin, "new@example.org")
    run_jobs()
    link = link_in_mail(mailbox, "new@example.org")
    later(monkeypatch, int(app.config["INVITE_MAX_AGE"]) + 1)
    response = as_browser(app.test_client()).get(path_of(link))
    assert response.status_code == 404
    assert "expired" in response.get_data(as_text=True)


def test_inviting_again_voids_the_first_link(
    app: Flask, admin: FlaskClient, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    invite(admin, "new@example.org")
    run_jobs()
    first = link_in_mail(mailbox, "new@example.org")
    press(admin, f"/admin/users/{user('new@example.org').id}/invite")
    run_jobs()
    second = link_in_mail(mailbox, "new@example.org")
    assert first != second
    invitee = as_browser(app.test_client())
    assert invitee.get(path_of(first)).status_code == 404
    assert invitee.get(path_of(second)).status_code == 200


def test_inviting_an_existing_address_is_refused(admin: FlaskClient) -> None:
    response = invite(admin, EMAIL.upper())
    assert response.status_code == 422
    assert "already exists" in response.get_data(as_text=True)


def test_a_forged_invitation_link_is_refused(app: Flask) -> None:
    response = as_browser(app.test_client()).get("/admin/invite/not-a-real-token")
    assert response.status_code == 404
    assert "incomplete or wrong" in response.get_data(as_text=True)


# --- roles, sending, deactivation ---------------------------------------------------------


def test_an_admin_changes_a_role_and_allows_an_editor_to_send(admin: FlaskClient) -> None:
    viewer = services.create_user("v@example.org", PASSWORD, role=Role.VIEWER)
    page = press(admin, f"/admin/users/{viewer.id}/role", **{f"u{viewer.id}-role": "editor"})
    assert "v@example.org is now editor" in page
    assert user("v@example.org").role is Role.EDITOR
    page = press(admin, f"/admin/users/{viewer.id}/can-send", allow="1")
    assert "may now send issues to lists" in page
    assert user("v@example.org").can_send
    press(admin, f"/admin/users/{viewer.id}/can-send", allow="0")
    assert not user("v@example.org").can_send


def test_an_unknown_role_is_refused(admin: FlaskClient) -> None:
    other = services.create_user("v@example.org", PASSWORD, role=Role.VIEWER)
    page = press(admin, f"/admin/users/{other.id}/role", **{f"u{other.id}-role": "owner"})
    assert "choose one of the roles" in page
    assert user("v@example.org").role is Role.VIEWER


def test_deactivating_ends_every_session_and_token_at_once(
    app: Flask, admin: FlaskClient
) -> None:
    other = services.create_user("ed@example.org", PASSWORD, role=Role.EDITOR)
    token = services.create_api_token("ed@example.org")
    editor = as_browser(app.test_client())
    log_in(editor, email="ed@example.org")
    assert editor.get("/admin/").status_code == 200

    page = press(admin, f"/admin/users/{other.id}/active", active="0")
    assert "deactivated" in page
    assert editor.get("/admin/").status_code == 302
    api = app.test_client().get("/api/v1/lists", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 401
    assert log_in(editor, email="ed@example.org").status_code == 401

    press(admin, f"/admin/users/{other.id}/active", active="1")
    assert log_in(editor, email="ed@example.org").status_code == 302


def test_an_admin_does_not_change_or_deactivate_themselves(admin: FlaskClient) -> None:
    me = user(EMAIL)
    page = press(admin, f"/admin/users/{me.id}/active", active="0")
    assert "cannot change your own account" in page
    press(admin, f"/admin/users/{me.id}/role", **{f"u{me.id}-role": "viewer"})
    assert (user(EMAIL).role, user(EMAIL).active) == (Role.ADMIN, True)


def test_the_last_active_admin_stays_an_admin(app: Flask) -> None:
    only = services.create_user("boss@example.org", PASSWORD, role=Role.ADMIN)
    with pytest.raises(Conflict):
        accounts.change_role(only, Role.EDITOR)
    with pytest.raises(Conflict):
        accounts.set_active(only, False)
    second = services.create_user("deputy@example.org", PASSWORD, role=Role.ADMIN)
    accounts.set_active(second, False)
    with pytest.raises(Conflict):  # the deactivated one does not count
        accounts.change_role(only, Role.VIEWER)


def test_only_editors_need_permission_to_send(app: Flask) -> None:
    viewer = services.create_user("v@example.org", PASSWORD, role=Role.VIEWER)
    with pytest.raises(Conflict):
        accounts.set_can_send(viewer, True)
    editor = services.create_user("e@example.org", PASSWORD, role=Role.EDITOR)
    accounts.set_can_send(editor, True)
    accounts.change_role(editor, Role.VIEWER)
    assert not editor.can_send  # a permission that no longer means anything is dropped


def test_the_users_page_lists_everyone_with_their_state(admin: FlaskClient) -> None:
    services.create_user("v@example.org", PASSWORD, role=Role.VIEWER)
    gone = services.create_user("gone@example.org", PASSWORD, role=Role.EDITOR)
    accounts.set_active(gone, False)
    page = admin.get("/admin/users").get_data(as_text=True)
    for text in (EMAIL, "(you)", "v@example.org", "gone@example.org", "deactivated", "Reactivate"):
        assert text in page


# --- password reset -----------------------------------------------------------------------


def ask_for_reset(client: FlaskClient, email: str) -> Any:
    token = token_for(client, "/admin/forgot")
    return client.post("/admin/forgot", data={"email": email, "csrf_token": token})


def test_the_login_page_offers_a_reset(client: FlaskClient) -> None:
    assert "/admin/forgot" in client.get("/admin/login").get_data(as_text=True)


def test_forgot_password_says_the_same_whatever_the_address(
    app: Flask, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    services.create_user(EMAIL, PASSWORD)
    gone = services.create_user("gone@example.org", PASSWORD)
    accounts.set_active(gone, False)
    answers = []
    for email in (EMAIL, "nobody@example.org", "gone@example.org"):
        browser = as_browser(app.test_client())
        response = ask_for_reset(browser, email)
        page = browser.get(response.headers["Location"]).get_data(as_text=True)
        answers.append((response.status_code, response.headers["Location"],
                        "If an account has that address" in page))
    assert answers[0] == answers[1] == answers[2] == (302, "/admin/login", True)
    run_jobs()
    assert {tuple(m.recipients) for m in mailbox.messages} == {(EMAIL,)}


def test_a_reset_link_sets_a_new_password_once_and_ends_the_sessions(
    app: Flask, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    services.create_user(EMAIL, PASSWORD)
    logged_in = as_browser(app.test_client())
    log_in(logged_in)
    stranger = as_browser(app.test_client())
    ask_for_reset(stranger, EMAIL)
    run_jobs()
    link = link_in_mail(mailbox, EMAIL)
    assert set_password_through(stranger, link).headers["Location"] == "/admin/login"
    assert services.authenticate(EMAIL, NEW_PASSWORD) is not None
    assert services.authenticate(EMAIL, PASSWORD) is None
    assert logged_in.get("/admin/").status_code == 302
    again = stranger.get(path_of(link))
    assert again.status_code == 404 and "used already" in again.get_data(as_text=True)


def test_a_reset_link_expires(
    app: Flask, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services.create_user(EMAIL, PASSWORD)
    browser = as_browser(app.test_client())
    ask_for_reset(browser, EMAIL)
    run_jobs()
    link = link_in_mail(mailbox, EMAIL)
    later(monkeypatch, int(app.config["RESET_MAX_AGE"]) + 1)
    assert set_password_through(browser, link).status_code == 404
    assert services.authenticate(EMAIL, PASSWORD) is not None


def test_a_reset_link_is_void_once_the_password_changed_otherwise(
    app: Flask, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    services.create_user(EMAIL, PASSWORD)
    ask_for_reset(as_browser(app.test_client()), EMAIL)
    run_jobs()
    link = link_in_mail(mailbox, EMAIL)
    services.change_password(user(EMAIL), PASSWORD, "changed on the settings page")
    assert as_browser(app.test_client()).get(path_of(link)).status_code == 404


def test_reset_mails_to_one_address_are_spaced_out(
    app: Flask, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    services.create_user(EMAIL, PASSWORD)
    for _ in range(3):
        assert ask_for_reset(as_browser(app.test_client()), EMAIL).status_code == 302
    run_jobs()
    assert len(mailbox.to(EMAIL)) == 1


def test_forgot_password_is_rate_limited_per_client(
    app_config: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    app_config.update(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="memory://",
                      RATELIMIT_RESET="2 per hour")
    app: Flask = request.getfixturevalue("app")
    browser = as_browser(app.test_client())
    statuses = [ask_for_reset(browser, f"p{n}@example.org").status_code for n in range(3)]
    assert statuses == [302, 302, 429]


def test_reset_links_point_at_the_base_url_whatever_host_the_request_named(
    app_config: dict[str, Any], request: pytest.FixtureRequest,
    mailbox: CapturingSMTPServer, run_jobs: Callable[[], None],
) -> None:
    app_config["SERVER_NAME"] = None  # as in production: any Host header reaches the app
    app: Flask = request.getfixturevalue("app")
    services.create_user(EMAIL, PASSWORD)
    browser = app.test_client()
    browser.environ_base["HTTP_REFERER"] = "https://evil.example/admin/forgot"
    page = browser.get("/admin/forgot", base_url="https://evil.example")
    token = csrf_token_from(page.get_data(as_text=True))
    response = browser.post("/admin/forgot", base_url="https://evil.example",
                            data={"email": EMAIL, "csrf_token": token})
    assert response.status_code == 302
    run_jobs()
    assert link_in_mail(mailbox, EMAIL).startswith("https://news.example.org/admin/reset/")
