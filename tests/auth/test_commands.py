"""``newsletter users create`` and ``newsletter tokens create|list|revoke``."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from newsletter.auth import services, tokens, totp
from newsletter.auth.models import ApiToken, Role, User
from newsletter.extensions import db
from newsletter.models import utcnow

PASSWORD = "correct horse battery"


def test_users_create_reads_the_password_from_stdin(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(
        args=["users", "create", "ed@example.org", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    user = db.session.scalars(select(User)).one()
    assert (user.email, user.role) == ("ed@example.org", Role.ADMIN)
    assert services.authenticate("ed@example.org", PASSWORD) is not None


def test_users_create_with_the_editor_role(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(
        args=["users", "create", "ed@example.org", "--role", "editor", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert db.session.scalars(select(User)).one().role is Role.EDITOR


@pytest.mark.parametrize("role", ["admin", "editor", "viewer"])
def test_users_create_takes_each_role(app: Flask, runner: FlaskCliRunner, role: str) -> None:
    result = runner.invoke(
        args=["users", "create", "ed@example.org", "--role", role, "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"created {role} ed@example.org"
    assert db.session.scalars(select(User)).one().role is Role(role)


def test_users_create_refuses_an_unknown_role(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(
        args=["users", "create", "ed@example.org", "--role", "owner", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert result.exit_code != 0
    assert "owner" in result.output
    assert db.session.scalars(select(User)).first() is None


def test_users_create_prompts_twice_without_stdin(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(
        args=["users", "create", "ed@example.org"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    assert "Repeat" in result.output
    assert PASSWORD not in result.output  # hidden input is not echoed
    assert services.authenticate("ed@example.org", PASSWORD) is not None


def test_users_create_asks_again_when_the_two_differ(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(
        args=["users", "create", "ed@example.org"],
        input=f"{PASSWORD}\nsomething else\n{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    assert services.authenticate("ed@example.org", PASSWORD) is not None


def test_users_create_refuses_a_short_password(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(
        args=["users", "create", "ed@example.org", "--password-stdin"], input="short\n"
    )
    assert result.exit_code == 1
    assert "at least 10 characters" in result.output
    assert db.session.scalar(select(User)) is None


def test_users_create_refuses_a_taken_address(app: Flask, runner: FlaskCliRunner) -> None:
    services.create_user("ed@example.org", PASSWORD)
    result = runner.invoke(
        args=["users", "create", "ED@example.org", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert result.exit_code == 1
    assert "already exists" in result.output


def test_tokens_create_prints_a_working_token_alone(app: Flask, runner: FlaskCliRunner) -> None:
    user = services.create_user("ed@example.org", PASSWORD)
    result = runner.invoke(args=["tokens", "create", "ed@example.org"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    token = lines[0]
    assert services.user_for_token(token) == user
    row = db.session.scalars(select(ApiToken)).one()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()


def test_tokens_create_for_an_unknown_user_fails(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["tokens", "create", "nobody@example.org"])
    assert result.exit_code == 1
    assert "nobody@example.org" in result.output


def test_tokens_create_takes_a_name_scopes_and_an_expiry(
    app: Flask, runner: FlaskCliRunner
) -> None:
    services.create_user("ed@example.org", PASSWORD)
    result = runner.invoke(
        args=["tokens", "create", "ed@example.org", "--name", "CI deploy", "--scope", "read",
              "--scope", "send", "--expires-days", "30"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [token] = result.stdout.splitlines()
    row = tokens.token_for(token)
    assert row is not None
    assert (row.name, row.scopes) == ("CI deploy", "read send")
    assert row.expires_at is not None and row.expires_at - utcnow() > timedelta(days=29)


@pytest.mark.parametrize(
    "extra", [["--scope", "admin"], ["--expires-days", "0"], ["--expires-days", "many"]]
)
def test_tokens_create_refuses_bad_options(
    app: Flask, runner: FlaskCliRunner, extra: list[str]
) -> None:
    services.create_user("ed@example.org", PASSWORD)
    result = runner.invoke(args=["tokens", "create", "ed@example.org", *extra])
    assert result.exit_code == 2
    assert db.session.scalar(select(ApiToken)) is None


def test_tokens_list_shows_one_line_per_token_and_never_the_token(
    app: Flask, runner: FlaskCliRunner
) -> None:
    ed = services.create_user("ed@example.org", PASSWORD)
    old = services.create_api_token("ed@example.org")
    named = tokens.create_token(ed, name="web form", scope_names=["write"], expires_days=7)
    tokens.revoke_token(named.row.id)
    tokens.token_for(old)

    result = runner.invoke(args=["tokens", "list"])
    assert result.exit_code == 0, result.output
    first, second = result.stdout.splitlines()
    assert old not in result.stdout and named.secret not in result.stdout
    assert first.startswith("id=1 owner=ed@example.org name='' prefix=" + old[:11] + " ")
    assert " scopes=read,write,send " in first
    assert " last_used=20" in first and first.endswith(" expires=never status=active")
    assert second.startswith("id=2 owner=ed@example.org name='web form' ")
    assert " scopes=write " in second and " last_used=never " in second
    assert " expires=never " not in second and second.endswith(" status=revoked")


def test_tokens_revoke_stops_a_token(app: Flask, runner: FlaskCliRunner) -> None:
    services.create_user("ed@example.org", PASSWORD)
    token = services.create_api_token("ed@example.org")
    result = runner.invoke(args=["tokens", "revoke", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"revoked id=1 prefix={token[:11]} owner=ed@example.org\n"
    assert services.user_for_token(token) is None


def test_tokens_revoke_of_an_unknown_id_fails(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["tokens", "revoke", "7"])
    assert result.exit_code == 1
    assert "no token 7" in result.output


def test_users_reset_two_factor_lets_the_password_alone_log_in_again(
    app: Flask, runner: FlaskCliRunner
) -> None:
    user = services.create_user("ed@example.org", PASSWORD)
    secret = totp.pending_secret(user)
    totp.confirm_enrolment(user, pyotp.TOTP(secret).now())
    result = runner.invoke(args=["users", "reset-two-factor", "ED@example.org"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "two-factor authentication is off for ed@example.org\n"
    db.session.expire_all()
    assert not totp.is_enabled(user)
    assert runner.invoke(args=["users", "reset-two-factor", "nobody@example.org"]).exit_code == 1
