"""The role table: every admin page and API call of the URL map, tried as every role.

The walk reads the routes from ``app.url_map``, not from the table, so a route added without
an entry in ``auth/permissions.py`` fails here (and, until it gets one, needs an admin).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from newsletter.auth import permissions
from newsletter.auth.models import Role, User
from newsletter.auth.permissions import (
    ACCOUNT,
    ADMIN,
    ADMIN_ENDPOINTS,
    API_RULES,
    EDIT,
    PUBLIC,
    READ,
    SEND,
    Permission,
    allows,
    needed,
)
from newsletter.auth.services import create_api_token, create_user
from newsletter.extensions import db
from tests.web.admin_browser import PASSWORD, as_browser

#: methods Flask adds by itself; they need what GET needs
IMPLICIT = {"HEAD", "OPTIONS"}
#: a number no row has: allowed calls answer 404 (or 4xx for their bodies), never 403
MISSING_ID = "999999"
ROLES = ["admin", "editor", "sender", "viewer"]  # "sender": an editor with can_send


def walked_rules(app: Flask) -> list[Rule]:
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith(("admin.", "api."))
    ]


def methods_of(rule: Rule) -> list[str]:
    return sorted((rule.methods or set()) - IMPLICIT)


def path_for(rule: Rule) -> str:
    """A path this rule matches, with ids no row has."""

    def value(match: re.Match[str]) -> str:
        return MISSING_ID if match.group(1) == "int" else "nothing"

    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?\w+>", value, rule.rule)


def table_entry(rule: Rule) -> Any:
    if rule.endpoint.startswith("admin."):
        return ADMIN_ENDPOINTS.get(rule.endpoint)
    return API_RULES.get(rule.rule)


def permission_for(rule: Rule, method: str) -> Permission:
    if rule.endpoint.startswith("admin."):
        return permissions.admin_permission(rule.endpoint, method)
    return needed(API_RULES, rule.rule, method)


class Person:
    """Someone with a role: a logged-in browser and an API token."""

    def __init__(self, app: Flask, role: str) -> None:
        self.app = app
        self.email = f"{role}@example.org"
        user = create_user(
            self.email, PASSWORD, role=Role.EDITOR if role == "sender" else Role(role)
        )
        if role == "sender":
            user.can_send = True
            db.session.commit()
        self.user: User = user
        self.token = create_api_token(self.email)
        self.browser = self._log_in()

    def _log_in(self) -> FlaskClient:
        browser = as_browser(self.app.test_client())
        response = browser.post("/admin/login", data={"email": self.email, "password": PASSWORD})
        assert response.status_code == 302
        return browser

    def call(self, method: str, path: str) -> Any:
        if path.startswith("/api/"):
            return self.app.test_client().open(
                path, method=method, headers={"Authorization": f"Bearer {self.token}"}, json={}
            )
        response = self.browser.open(path, method=method)
        if path == "/admin/logout" and method == "POST":
            self.browser = self._log_in()  # it worked: log in again for the next call
        return response


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    # Forms post without tokens here: the walk is about roles, CSRF is tested elsewhere.
    return {**app_config, "WTF_CSRF_ENABLED": False}


@pytest.fixture
def people(app: Flask) -> Iterator[dict[str, Person]]:
    yield {role: Person(app, role) for role in ROLES}


def test_every_admin_page_and_api_rule_is_in_the_role_table(app: Flask) -> None:
    missing = []
    for rule in walked_rules(app):
        entry = table_entry(rule)
        if entry is None:
            missing.append(f"{rule.endpoint} {rule.rule}")
        elif not isinstance(entry, Permission):
            missing += [f"{m} {rule.rule}" for m in methods_of(rule) if m not in entry]
    assert missing == [], "add these to auth/permissions.py"


def test_the_role_table_names_only_routes_that_exist(app: Flask) -> None:
    endpoints = {rule.endpoint for rule in walked_rules(app)}
    rules = {rule.rule for rule in walked_rules(app)}
    assert set(ADMIN_ENDPOINTS) - endpoints == set()
    assert set(API_RULES) - rules == set()


def test_a_route_the_table_does_not_name_needs_an_admin() -> None:
    assert permissions.admin_permission("admin.some_new_page", "GET") is ADMIN
    assert needed(API_RULES, "/api/v1/some/new/call", "GET") is ADMIN
    assert needed(API_RULES, "/api/v1/lists", "DELETE") is ADMIN  # a method it does not name
    assert needed(API_RULES, None, "GET") is ADMIN


@pytest.mark.parametrize(
    ("role", "can_send", "allowed"),
    [
        ("admin", False, {PUBLIC, ACCOUNT, READ, EDIT, SEND, ADMIN}),
        ("editor", False, {PUBLIC, ACCOUNT, READ, EDIT}),
        ("editor", True, {PUBLIC, ACCOUNT, READ, EDIT, SEND}),
        ("viewer", False, {PUBLIC, ACCOUNT, READ}),
        ("viewer", True, {PUBLIC, ACCOUNT, READ}),  # can_send means nothing for a viewer
    ],
)
def test_what_each_role_may_do(role: str, can_send: bool, allowed: set[Permission]) -> None:
    user = User(email="x@example.org", role=Role(role), can_send=can_send, active=True)
    assert {p for p in Permission if allows(user, p)} == allowed


def test_strangers_only_get_public_permissions() -> None:
    from flask_login import AnonymousUserMixin

    assert {p for p in Permission if allows(AnonymousUserMixin(), p)} == {PUBLIC}


def test_every_route_as_every_role_is_allowed_or_refused_as_the_table_says(
    app: Flask, people: dict[str, Person]
) -> None:
    adapter = app.url_map.bind("news.example.org", url_scheme="https")
    mismatches, calls = [], 0
    # Logging out ends the session: walk it last, so the other calls keep theirs.
    ordered = sorted(walked_rules(app), key=lambda rule: rule.endpoint == "admin.logout")
    for rule in ordered:
        path = path_for(rule)
        for method in methods_of(rule):
            assert adapter.match(path, method=method)[0] == rule.endpoint, (rule, path)
            permission = permission_for(rule, method)
            for role, person in people.items():
                response = person.call(method, path)
                calls += 1
                expected = allows(person.user, permission)
                refused = response.status_code == 403
                if refused == expected:
                    mismatches.append(
                        f"{role} {method} {path}: {response.status_code}, "
                        f"table says {permission.value}"
                    )
                elif refused:
                    _assert_refusal_shape(path, response)
    assert mismatches == []
    assert calls > 4 * 50  # the walk really covered the map


def _assert_refusal_shape(path: str, response: Any) -> None:
    if path.startswith("/api/"):
        error = response.get_json()["error"]
        assert set(error) == {"message", "field"} and error["message"]
    elif response.is_json:  # the admin's polled JSON endpoints
        assert response.get_json()["error"]["message"]
    else:
        assert "Not allowed" in response.get_data(as_text=True)


def test_every_route_sends_strangers_to_log_in_unless_public(app: Flask) -> None:
    stranger = as_browser(app.test_client())
    wrong = []
    for rule in walked_rules(app):
        path = path_for(rule)
        for method in methods_of(rule):
            response = stranger.open(path, method=method)
            if path.startswith("/api/") and permission_for(rule, method) is PUBLIC:
                # a provider webhook: no token asked; unconfigured here, so not found
                ok = response.status_code == 404
            elif path.startswith("/api/"):
                ok = response.status_code == 401
            elif permission_for(rule, method) is PUBLIC:
                ok = response.status_code not in (401, 403) and "/admin/login?next=" not in (
                    response.headers.get("Location") or ""
                )
            else:
                ok = response.status_code == 401 or (
                    response.status_code == 302
                    and response.headers["Location"].startswith("/admin/login?next=")
                )
            if not ok:
                wrong.append(f"{method} {path}: {response.status_code}")
    assert wrong == []


def test_the_refusal_names_what_is_missing(app: Flask, people: dict[str, Person]) -> None:
    response = people["editor"].call("POST", "/api/v1/issues/1/send")
    assert response.status_code == 403
    assert "admin" in response.get_json()["error"]["message"]
    response = people["viewer"].call("POST", "/api/v1/statements")
    assert response.status_code == 403
    assert "viewer" in response.get_json()["error"]["message"]
