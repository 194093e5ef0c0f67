"""API tokens: names, scopes, expiry, revocation, the last-used time; and the scope table."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask

from newsletter.auth import scopes, services, tokens
from newsletter.auth.models import ApiToken, User
from newsletter.errors import NotFound, ValidationError
from newsletter.extensions import db
from newsletter.models import utcnow

PASSWORD = "correct horse battery"


@pytest.fixture
def user(app: Flask) -> User:
    return services.create_user("ed@example.org", PASSWORD)


def test_a_token_keeps_its_name_scopes_and_expiry(user: User) -> None:
    made = tokens.create_token(
        user, name=" CI deploy ", scope_names=["send", "read"], expires_days=30
    )
    row = db.session.get(ApiToken, made.row.id)
    assert row is not None
    assert (row.name, row.scopes) == ("CI deploy", "read send")
    assert row.expires_at is not None
    assert timedelta(days=29, hours=23) < row.expires_at - utcnow() <= timedelta(days=30)
    assert made.secret.startswith(row.prefix) and made.secret not in row.token_hash
    assert tokens.token_for(made.secret) == row


def test_a_token_has_every_scope_and_no_expiry_unless_told(user: User) -> None:
    row = tokens.create_token(user).row
    assert row.scopes == "read write send"
    assert row.expires_at is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"scope_names": []}, "scopes"),
        ({"scope_names": ["read", "admin"]}, "scopes"),
        ({"name": "x" * 101}, "name"),
        ({"expires_days": 0}, "expires_days"),
        ({"expires_days": 3651}, "expires_days"),
    ],
)
def test_a_token_with_bad_settings_is_refused(
    user: User, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        tokens.create_token(user, **kwargs)  # type: ignore[arg-type]
    assert raised.value.field == field
    assert tokens.list_tokens() == []


def test_an_expired_token_stops_working(user: User) -> None:
    made = tokens.create_token(user, expires_days=1)
    made.row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert tokens.token_for(made.secret) is None
    assert tokens.status(made.row) == "expired"


def test_a_revoked_token_stops_working_at_once(user: User) -> None:
    made = tokens.create_token(user)
    assert tokens.token_for(made.secret) is not None
    revoked = tokens.revoke_token(made.row.id)
    assert revoked.revoked_at is not None
    assert tokens.token_for(made.secret) is None
    assert services.user_for_token(made.secret) is None
    assert tokens.status(revoked) == "revoked"
    first = revoked.revoked_at
    assert tokens.revoke_token(made.row.id).revoked_at == first  # again: nothing changes


def test_a_user_can_revoke_only_their_own_tokens(user: User) -> None:
    other = services.create_user("other@example.org", PASSWORD)
    theirs = tokens.create_token(other)
    with pytest.raises(NotFound):
        tokens.revoke_token(theirs.row.id, user=user)
    with pytest.raises(NotFound):
        tokens.revoke_token(9999, user=user)
    assert tokens.token_for(theirs.secret) is not None


def test_use_is_recorded_to_the_minute(user: User) -> None:
    made = tokens.create_token(user)
    assert made.row.last_used_at is None
    tokens.token_for(made.secret)
    first = made.row.last_used_at
    assert first is not None and utcnow() - first < timedelta(minutes=1)
    tokens.token_for(made.secret)
    assert made.row.last_used_at == first  # no write per call
    made.row.last_used_at = first - timedelta(minutes=2)
    db.session.commit()
    tokens.token_for(made.secret)
    assert made.row.last_used_at > first - timedelta(seconds=1)


def test_tokens_are_listed_oldest_first_and_by_owner(user: User) -> None:
    other = services.create_user("other@example.org", PASSWORD)
    mine = tokens.create_token(user, name="a").row
    theirs = tokens.create_token(other, name="b").row
    assert tokens.list_tokens() == [mine, theirs]
    assert tokens.list_tokens(user) == [mine]


def test_an_overlong_bearer_value_is_refused(user: User) -> None:
    assert tokens.token_for("nl_" + "a" * 10_000) is None


@pytest.mark.parametrize(
    ("rule", "method", "scope"),
    [
        ("/api/v1/lists", "GET", "read"),
        ("/api/v1/lists", "HEAD", "read"),
        ("/api/v1/lists", "POST", "write"),
        ("/api/v1/subscribers/<int:subscriber_id>", "PATCH", "write"),
        ("/api/v1/subscribers/<int:subscriber_id>", "DELETE", "write"),
        ("/api/v1/issues/<int:issue_id>/pause", "POST", "write"),
        ("/api/v1/issues/<int:issue_id>/cancel", "POST", "write"),
        ("/api/v1/issues/<int:issue_id>/send", "POST", "send"),
        ("/api/v1/issues/<issue_id>/schedule", "POST", "send"),
        ("/api/v1/issues/<int:issue_id>/resume", "POST", "send"),
        ("/api/v1/issues/<int:issue_id>/retry", "POST", "send"),
        ("/api/v1/tx", "POST", "send"),
        ("/api/v1/tx/<int:tx_id>", "GET", "read"),
    ],
)
def test_the_scope_each_call_needs(rule: str, method: str, scope: str) -> None:
    assert scopes.required_scope(rule, method) == scope


def test_old_scope_strings_and_unknown_words() -> None:
    assert scopes.parse_scopes("read write send") == {"read", "write", "send"}
    assert scopes.parse_scopes("read  admin") == {"read"}
    assert scopes.missing_scope("read", "/api/v1/lists", "POST") == "write"
    assert scopes.missing_scope("read", None, "POST") is None
