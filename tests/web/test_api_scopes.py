"""Token scopes on the API: read for GET, write for changes, send for what sends mail; a 403
in the error shape when the token lacks it; expired and revoked tokens are unknown ones."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from werkzeug.routing import Rule

from newsletter.auth import scopes, services, tokens
from newsletter.auth.models import User
from newsletter.content.models import Issue, IssueStatus
from newsletter.extensions import db
from newsletter.models import utcnow
from newsletter.web.api.blueprint import CATCH_ALL_ENDPOINTS
from tests.factories import make_issue, make_list, make_statement, make_subscriber
from tests.web.api_client import API, Api, assert_error

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
def robot(app: Flask) -> User:
    return services.create_user("robot@example.org", "a long enough password 123")


def api_with(client: FlaskClient, robot: User, *granted: str) -> Api:
    return Api(client, tokens.create_token(robot, scope_names=granted).secret)


@pytest.fixture
def issue_id(app: Flask) -> int:
    news = make_list("news")
    make_subscriber("ada@example.org", lists=(news,))
    return int(make_issue((make_statement(),), (news,), subject="Weekly").id)


def api_calls(app: Flask) -> list[tuple[str, str, str]]:
    """Every (method, path, rule) the API answers, variables filled in."""
    calls = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API) or rule.endpoint in CATCH_ALL_ENDPOINTS:
            continue
        if getattr(app.view_functions[rule.endpoint], "authenticates_itself", False):
            continue  # provider webhooks: signed by the provider, no token (bounce_hooks.py)
        path = re.sub(r"<int:[^>]+>", "1", rule.rule)
        path = re.sub(r"<[^>]+>", "news", path)
        calls += [(method, path[len(API) :], rule.rule) for method in _methods(rule)]
    return calls


def _methods(rule: Rule) -> list[str]:
    return [method for method in METHODS if method in (rule.methods or ())]


def test_every_api_call_is_refused_to_a_token_without_its_scope(
    app: Flask, client: FlaskClient, robot: User, issue_id: int
) -> None:
    calls = api_calls(app)
    assert len(calls) > 20  # the walk reaches the routes
    for method, path, rule in calls:
        needed = scopes.required_scope(rule, method)
        others = [scope for scope in scopes.ALL_SCOPES if scope != needed]
        response = api_with(client, robot, *others).call(method, path, json={})
        assert response.status_code == 403, (method, path)
        if method != "HEAD":
            message = assert_error(response, 403, "Authorization")
            assert needed in message
        # With just that scope the call gets past the check (whatever it then answers).
        allowed = api_with(client, robot, needed).call(method, path, json={})
        assert allowed.status_code != 403, (method, path, allowed.get_data(as_text=True))


def test_every_sending_call_exists_and_needs_the_send_scope(app: Flask) -> None:
    posts = {scopes.route_key(rule) for method, _, rule in api_calls(app) if method == "POST"}
    assert scopes.SEND_RULES <= posts  # a renamed route would silently lose its guard
    for key in posts - scopes.SEND_RULES:
        assert scopes.required_scope(API + key, "POST") == "write"


def test_a_read_token_reads_and_changes_nothing(
    client: FlaskClient, robot: User, issue_id: int
) -> None:
    api = api_with(client, robot, "read")
    assert api.get("/lists").status_code == 200
    assert api.get(f"/issues/{issue_id}").status_code == 200
    assert_error(api.post("/lists", {"slug": "more", "name": "More"}), 403, "Authorization")
    assert_error(api.post(f"/issues/{issue_id}/send"), 403, "Authorization")
    assert [item["slug"] for item in api.get("/lists").get_json()["items"]] == ["news"]


def test_a_write_token_builds_issues_but_cannot_send_them(
    client: FlaskClient, robot: User, issue_id: int
) -> None:
    api = api_with(client, robot, "write")
    assert api.post("/lists", {"slug": "more", "name": "More"}).status_code == 201
    assert_error(api.get("/lists"), 403, "Authorization")
    message = assert_error(api.post(f"/issues/{issue_id}/send"), 403, "Authorization")
    assert "send" in message
    refused = api.post(f"/issues/{issue_id}/schedule", {"send_at": "2099-01-01T09:00Z"})
    assert_error(refused, 403, "Authorization")
    assert db.session.get(Issue, issue_id).status is IssueStatus.DRAFT  # type: ignore[union-attr]


def test_a_send_token_sends_but_neither_reads_nor_writes(
    client: FlaskClient, robot: User, issue_id: int
) -> None:
    api = api_with(client, robot, "send")
    assert api.post(f"/issues/{issue_id}/send").status_code == 202
    assert_error(api.get(f"/issues/{issue_id}"), 403, "Authorization")
    assert_error(api.post("/lists", {"slug": "more", "name": "More"}), 403, "Authorization")


def test_a_token_made_before_scopes_keeps_every_scope(
    client: FlaskClient, robot: User, issue_id: int
) -> None:
    secret = "nl_" + "o" * 43  # inserted as the old code did: no name, scopes or expiry
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO api_tokens (user_id, token_hash, prefix, created_at)"
                " VALUES (:user_id, :digest, :prefix, CURRENT_TIMESTAMP)"
            ),
            {"user_id": robot.id, "digest": tokens.token_hash(secret), "prefix": secret[:11]},
        )
    api = Api(client, secret)
    assert api.get("/lists").status_code == 200
    assert api.post("/lists", {"slug": "more", "name": "More"}).status_code == 201
    assert api.post(f"/issues/{issue_id}/send").status_code == 202


def test_the_token_from_the_cli_contract_has_every_scope(
    client: FlaskClient, robot: User, issue_id: int
) -> None:
    api = Api(client, services.create_api_token("robot@example.org"))
    assert api.get("/lists").status_code == 200
    assert api.post(f"/issues/{issue_id}/send").status_code == 202


def test_expired_and_revoked_tokens_answer_like_unknown_ones(
    client: FlaskClient, robot: User
) -> None:
    expired = tokens.create_token(robot, expires_days=1)
    expired.row.expires_at = utcnow() - timedelta(minutes=1)
    revoked = tokens.create_token(robot)
    tokens.revoke_token(revoked.row.id)
    unknown = Api(client, "nl_" + "x" * 43).get("/lists")
    for made in (expired, revoked):
        response = Api(client, made.secret).get("/lists")
        assert (
            assert_error(response, 401, "Authorization") == unknown.get_json()["error"]["message"]
        )
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_unknown_routes_stay_404_and_405_whatever_the_scope(
    client: FlaskClient, robot: User
) -> None:
    api = api_with(client, robot, "read")
    assert_error(api.post("/nothing/here", {}), 404, None)
    assert_error(api.call("PUT", "/lists", json={}), 405, None)
