"""API tokens on the profile: made with a name, scopes and an expiry, shown once, listed,
revoked."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from newsletter.audit import AuditEvent
from newsletter.auth import services, tokens
from newsletter.auth.models import ApiToken, Role
from newsletter.extensions import db
from tests.web.admin_browser import as_browser, log_in, logged_in_admin, token_for
from tests.web.api_client import Api, assert_error

NEW_TOKEN = re.compile(r'id="new-token-value">(nl_[A-Za-z0-9_-]+)<')


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    return logged_in_admin(app)


def make_token(client: FlaskClient, **fields: object) -> str:
    data = {"csrf_token": token_for(client, "/admin/profile/tokens"), **fields}
    response = client.post("/admin/profile/tokens", data=data)
    assert response.status_code == 200, response.get_data(as_text=True)
    match = NEW_TOKEN.search(response.get_data(as_text=True))
    assert match, "the new token is not on the page"
    return match.group(1)


def test_a_new_token_is_shown_once_and_then_only_its_prefix(app: Flask, admin: FlaskClient) -> None:
    secret = make_token(admin, name="website form", scopes=["read", "write"], expires="30")
    row = db.session.scalars(db.select(ApiToken)).one()
    assert (row.name, row.scopes) == ("website form", "read write")
    assert row.expires_at is not None

    page = admin.get("/admin/profile/tokens").get_data(as_text=True)
    assert secret not in page
    assert "website form" in page and f"{row.prefix}…" in page
    assert "read, write" in page
    assert 'data-label="Last used" class="nowrap">never<' in page


def test_a_token_made_in_the_admin_works_with_just_its_scopes(
    app: Flask, admin: FlaskClient
) -> None:
    api = Api(app.test_client(), make_token(admin, name="reader", scopes=["read"]))
    assert api.get("/lists").status_code == 200
    assert_error(api.post("/lists", {"slug": "news", "name": "News"}), 403, "Authorization")
    page = admin.get("/admin/profile/tokens").get_data(as_text=True)
    assert re.search(r'data-label="Last used" class="nowrap">\d{4}-\d\d-\d\d \d\d:\d\d UTC<', page)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "", "scopes": ["read"]}, "This field is required."),
        ({"name": "no scope"}, "Choose at least one."),
        ({"name": "odd", "scopes": ["admin"]}, "not a valid choice"),
        ({"name": "odd", "scopes": ["read"], "expires": "9999"}, "Not a valid choice"),
    ],
)
def test_a_token_form_with_bad_fields_makes_nothing(
    admin: FlaskClient, fields: dict[str, object], message: str
) -> None:
    data = {"csrf_token": token_for(admin, "/admin/profile/tokens"), **fields}
    response = admin.post("/admin/profile/tokens", data=data)
    assert response.status_code == 422
    assert message.lower() in response.get_data(as_text=True).lower()
    assert tokens.list_tokens() == []


def test_revoking_in_the_admin_stops_the_token(app: Flask, admin: FlaskClient) -> None:
    secret = make_token(admin, name="old script", scopes=["read"])
    row = db.session.scalars(db.select(ApiToken)).one()
    response = admin.post(
        f"/admin/profile/tokens/{row.id}/revoke",
        data={"csrf_token": token_for(admin, "/admin/profile/tokens")},
    )
    assert response.status_code == 302
    assert "revoked" in admin.get("/admin/profile/tokens").get_data(as_text=True)
    assert_error(Api(app.test_client(), secret).get("/lists"), 401, "Authorization")


def test_the_page_lists_only_your_own_tokens_and_revokes_only_them(
    app: Flask, admin: FlaskClient
) -> None:
    other = services.create_user("other@example.org", "another long password")
    theirs = tokens.create_token(other, name="their secret script")
    mine = make_token(admin, name="mine", scopes=["read"])
    page = admin.get("/admin/profile/tokens").get_data(as_text=True)
    assert "their secret script" not in page and theirs.row.prefix not in page
    response = admin.post(
        f"/admin/profile/tokens/{theirs.row.id}/revoke",
        data={"csrf_token": token_for(admin, "/admin/profile/tokens")},
    )
    assert response.status_code == 404
    assert tokens.token_for(theirs.secret) is not None
    assert tokens.token_for(mine) is not None


def test_revoking_needs_the_csrf_token(app: Flask, admin: FlaskClient) -> None:
    secret = make_token(admin, name="kept", scopes=["read"])
    row = db.session.scalars(db.select(ApiToken)).one()
    admin.post(f"/admin/profile/tokens/{row.id}/revoke", data={})
    assert tokens.token_for(secret) is not None


# --- every user's tokens, for admins -----------------------------------------------------


def test_an_admin_sees_every_user_s_tokens_and_revokes_any(app: Flask, admin: FlaskClient) -> None:
    editor = services.create_user("ed@example.org", "an editor's long password",
                                  role=Role.EDITOR)
    theirs = tokens.create_token(editor, name="ed's deploy script", scope_names=["read"],
                                 expires_days=30)
    make_token(admin, name="mine", scopes=["read"])
    assert "/admin/users/tokens" in admin.get("/admin/profile/tokens").get_data(as_text=True)
    assert tokens.token_for(theirs.secret) is not None  # as a call does: now it has a last use

    page = admin.get("/admin/users/tokens").get_data(as_text=True)
    assert "ed@example.org" in page and "ed&#39;s deploy script" in page
    assert f"{theirs.row.prefix}…" in page and "mine" in page
    assert theirs.row.expires_at is not None
    assert f'data-label="Expires" class="nowrap">{theirs.row.expires_at:%Y-%m-%d}<' in page
    last_used = re.search(r'data-label="Last used">(.*?)</td>', page[page.index("deploy script"):])
    assert last_used and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC",
                                      " ".join(re.sub(r"<[^>]+>", " ", last_used[1]).split()))

    response = admin.post(
        f"/admin/users/tokens/{theirs.row.id}/revoke",
        data={"csrf_token": token_for(admin, "/admin/users/tokens")},
    )
    assert response.status_code == 302
    shown = admin.get(response.location).get_data(as_text=True)
    assert "of ed@example.org is revoked" in shown
    assert_error(Api(app.test_client(), theirs.secret).get("/lists"), 401, "Authorization")
    db.session.remove()
    [event] = db.session.scalars(
        db.select(AuditEvent).where(AuditEvent.action == "admin.user_token_revoke")
    ).all()
    assert (event.actor, event.target) == ("editor@example.org", f"token_id={theirs.row.id}")


def test_revoking_anyone_s_token_needs_the_csrf_token(app: Flask, admin: FlaskClient) -> None:
    other = services.create_user("other@example.org", "another long password")
    theirs = tokens.create_token(other, name="kept")
    admin.post(f"/admin/users/tokens/{theirs.row.id}/revoke", data={})
    assert tokens.token_for(theirs.secret) is not None


@pytest.mark.parametrize("role", [Role.EDITOR, Role.VIEWER])
def test_others_see_and_revoke_only_their_own_tokens(app: Flask, role: Role) -> None:
    boss = services.create_user("boss@example.org", "the admin's long password")
    theirs = tokens.create_token(boss, name="the admin's script")
    services.create_user("ed@example.org", "an editor's long password", role=role)
    client = as_browser(app.test_client())
    assert log_in(client, "ed@example.org", "an editor's long password").status_code == 302
    own = make_token(client, name="my own", scopes=["read"])

    page = client.get("/admin/profile/tokens").get_data(as_text=True)
    assert "my own" in page
    assert "the admin&#39;s script" not in page and theirs.row.prefix not in page
    assert "/admin/users/tokens" not in page
    assert client.get("/admin/users/tokens").status_code == 403

    csrf = token_for(client, "/admin/profile/tokens")
    for path, refused in [
        (f"/admin/users/tokens/{theirs.row.id}/revoke", 403),
        (f"/admin/profile/tokens/{theirs.row.id}/revoke", 404),
    ]:
        assert client.post(path, data={"csrf_token": csrf}).status_code == refused
    assert tokens.token_for(theirs.secret) is not None
    assert tokens.token_for(own) is not None
