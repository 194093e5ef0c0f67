"""API tokens on the profile: made with a name, scopes and an expiry, shown once, listed,
revoked."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from newsletter.auth import services, tokens
from newsletter.auth.models import ApiToken
from newsletter.extensions import db
from tests.web.admin_browser import logged_in_admin, token_for
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
