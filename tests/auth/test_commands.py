"""``newsletter users create`` and ``newsletter tokens create``."""

from __future__ import annotations

import hashlib

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from newsletter.auth import services
from newsletter.auth.models import ApiToken, Role, User
from newsletter.extensions import db

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
