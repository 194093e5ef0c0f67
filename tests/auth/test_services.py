"""Accounts: argon2 passwords, API tokens kept only as hashes, the first-admin setup link."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from flask import Flask
from sqlalchemy import select

from newsletter.auth import services
from newsletter.auth.models import ApiToken, Role, User
from newsletter.errors import Conflict, InvalidEmail, InvalidToken, NotFound, ValidationError
from newsletter.extensions import db
from newsletter.models import utcnow

PASSWORD = "correct horse battery"


@pytest.fixture
def cheap_password_hashing() -> None:
    """This module is about the hashing: the production argon2 parameters, not the suite's
    cheap ones (tests/conftest.py)."""


def test_passwords_are_hashed_with_argon2id_and_verify() -> None:
    hashed = services.hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$")
    assert PASSWORD not in hashed
    assert services.verify_password(hashed, PASSWORD)
    assert not services.verify_password(hashed, PASSWORD + "!")
    assert not services.verify_password("not a hash", PASSWORD)


def test_the_same_password_hashes_differently_each_time() -> None:
    assert services.hash_password(PASSWORD) != services.hash_password(PASSWORD)


def test_create_user_keeps_only_the_hash_and_defaults_to_admin(app: Flask) -> None:
    user = services.create_user("Editor@Example.org", PASSWORD)
    stored = db.session.get(User, user.id)
    assert stored is not None
    assert stored.role is Role.ADMIN
    assert stored.password_hash.startswith("$argon2id$")
    assert services.verify_password(stored.password_hash, PASSWORD)


def test_create_user_with_the_editor_role(app: Flask) -> None:
    assert services.create_user("ed@example.org", PASSWORD, role=Role.EDITOR).role is Role.EDITOR


def test_create_user_refuses_a_short_password(app: Flask) -> None:
    with pytest.raises(ValidationError) as raised:
        services.create_user("ed@example.org", "short")
    assert raised.value.field == "password"
    assert db.session.scalar(select(User)) is None


def test_create_user_refuses_an_invalid_address(app: Flask) -> None:
    with pytest.raises(InvalidEmail) as raised:
        services.create_user("not-an-address", PASSWORD)
    assert raised.value.field == "email"


def test_addresses_are_unique_whatever_their_case(app: Flask) -> None:
    services.create_user("ed@example.org", PASSWORD)
    with pytest.raises(Conflict) as raised:
        services.create_user("ED@Example.ORG", PASSWORD)
    assert raised.value.field == "email"


def test_authenticate_with_the_right_password_records_the_login(app: Flask) -> None:
    services.create_user("ed@example.org", PASSWORD)
    user = services.authenticate("ED@example.org", PASSWORD)
    assert user is not None
    assert user.email == "ed@example.org"
    assert user.last_login_at is not None
    assert utcnow() - user.last_login_at < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("email", "password"),
    [("ed@example.org", "wrong password"), ("nobody@example.org", PASSWORD), ("", "")],
)
def test_authenticate_refuses_a_wrong_pair(app: Flask, email: str, password: str) -> None:
    services.create_user("ed@example.org", PASSWORD)
    assert services.authenticate(email, password) is None


def test_authenticate_refuses_an_inactive_user(app: Flask) -> None:
    user = services.create_user("ed@example.org", PASSWORD)
    user.active = False
    db.session.commit()
    assert services.authenticate("ed@example.org", PASSWORD) is None


def test_authenticate_upgrades_a_hash_made_with_old_parameters(app: Flask) -> None:
    user = services.create_user("ed@example.org", PASSWORD)
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    user.password_hash = weak
    db.session.commit()
    assert services.authenticate("ed@example.org", PASSWORD) is not None
    upgraded = db.session.get(User, user.id)
    assert upgraded is not None
    assert upgraded.password_hash != weak
    assert services.verify_password(upgraded.password_hash, PASSWORD)


def test_api_token_is_shown_once_and_only_its_hash_is_kept(app: Flask) -> None:
    user = services.create_user("ed@example.org", PASSWORD)
    token = services.create_api_token("ED@example.org")
    assert token.startswith(services.TOKEN_PREFIX)
    assert len(token) > 40
    row = db.session.scalars(select(ApiToken)).one()
    assert row.user_id == user.id
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in (row.token_hash, row.prefix)
    assert token.startswith(row.prefix)
    assert services.user_for_token(token) == user
    assert row.last_used_at is not None


def test_each_api_token_is_new(app: Flask) -> None:
    services.create_user("ed@example.org", PASSWORD)
    assert services.create_api_token("ed@example.org") != services.create_api_token(
        "ed@example.org"
    )


@pytest.mark.parametrize("token", ["", "nl_made-up", "something else entirely"])
def test_unknown_api_tokens_belong_to_nobody(app: Flask, token: str) -> None:
    services.create_user("ed@example.org", PASSWORD)
    services.create_api_token("ed@example.org")
    assert services.user_for_token(token) is None


def test_api_token_of_an_inactive_user_is_refused(app: Flask) -> None:
    user = services.create_user("ed@example.org", PASSWORD)
    token = services.create_api_token("ed@example.org")
    user.active = False
    db.session.commit()
    assert services.user_for_token(token) is None


def test_api_token_for_an_unknown_user_is_not_found(app: Flask) -> None:
    with pytest.raises(NotFound) as raised:
        services.create_api_token("nobody@example.org")
    assert raised.value.kind == "user"


def test_the_first_admin_is_needed_until_a_user_exists(app: Flask) -> None:
    assert services.needs_first_admin()
    services.create_user("ed@example.org", PASSWORD)
    assert not services.needs_first_admin()


def test_setup_url_is_absolute_signed_and_works_while_no_user_exists(app: Flask) -> None:
    url = services.first_admin_setup_url()
    assert url.startswith("https://news.example.org/admin/setup/")
    token = url.rsplit("/", 1)[1]
    services.check_setup_token(token)
    user = services.create_first_admin(token, "first@example.org", PASSWORD)
    assert user.role is Role.ADMIN
    with pytest.raises(InvalidToken) as raised:
        services.check_setup_token(token)
    assert (raised.value.purpose, raised.value.reason) == ("setup", "used")


def test_setup_url_keeps_a_base_url_path(app_config: dict[str, object]) -> None:
    from newsletter import create_app

    app_config["BASE_URL"] = "https://example.org/news/"
    with create_app(app_config).app_context():
        assert services.first_admin_setup_url().startswith(
            "https://example.org/news/admin/setup/"
        )


@pytest.mark.parametrize("token", ["forged", "eyJwdXJwb3NlIjoic2V0dXAifQ.AAAA.BBBB"])
def test_forged_setup_tokens_are_refused(app: Flask, token: str) -> None:
    with pytest.raises(InvalidToken) as raised:
        services.check_setup_token(token)
    assert raised.value.reason == "invalid"


def test_setup_tokens_expire(app: Flask) -> None:
    token = services.first_admin_setup_url().rsplit("/", 1)[1]
    app.config["SETUP_MAX_AGE"] = -1
    with pytest.raises(InvalidToken) as raised:
        services.check_setup_token(token)
    assert raised.value.reason == "expired"


def test_tokens_signed_for_another_purpose_are_not_setup_tokens(app: Flask) -> None:
    from itsdangerous import URLSafeTimedSerializer

    other = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="confirm").dumps([1, 2])
    with pytest.raises(InvalidToken):
        services.check_setup_token(other)
