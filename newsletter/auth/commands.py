"""``newsletter users …`` and ``newsletter tokens …``: accounts from the command line."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup

from newsletter import audit
from newsletter.auth import services
from newsletter.auth.models import Role
from newsletter.errors import NewsletterError

users = AppGroup("users", help="Manage the people who can log in to the admin pages.")
tokens = AppGroup("tokens", help="Manage API tokens.")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # One line; only its line ending is dropped (spaces may be part of the password).
        return sys.stdin.readline().rstrip("\r\n")
    password: str = click.prompt(
        "Password", hide_input=True, confirmation_prompt="Repeat the password"
    )
    return password


@users.command("create")
@click.argument("email")
@click.option(
    "--role",
    type=click.Choice([role.value for role in Role]),
    default=Role.ADMIN.value,
    show_default=True,
    help="What the user may do.",
)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
def create_user_command(email: str, role: str, password_stdin: bool) -> None:
    """Make a user who can log in to the admin pages (asks for the password twice)."""

    password = _read_password(password_stdin)
    try:
        user = services.create_user(email, password, role=Role(role))
    except NewsletterError as error:
        raise click.ClickException(error.message) from None
    audit.record_cli(
        "cli.users_create", target=f"user_id={user.id}", detail={"role": user.role.value}
    )
    click.echo(f"created {user.role.value} {user.email}")


@tokens.command("create")
@click.argument("email")
def create_token_command(email: str) -> None:
    """Print a new API token for the user EMAIL, alone on stdout (it is shown only once)."""

    try:
        token = services.create_api_token(email)
    except NewsletterError as error:
        raise click.ClickException(error.message) from None
    owner = services.find_user(email)
    audit.record_cli("cli.tokens_create", target=f"user_id={owner.id}" if owner else "")
    click.echo(token)


def register(app: Flask) -> None:
    """Add this domain's commands to ``app.cli``."""
    app.cli.add_command(users)
    app.cli.add_command(tokens)
