"""``newsletter users …`` and ``newsletter tokens …``: accounts from the command line."""

from __future__ import annotations

import shlex
import sys
from datetime import datetime

import click
from flask import Flask
from flask.cli import AppGroup

from newsletter import audit
from newsletter.auth import scopes, services, totp
from newsletter.auth import tokens as api_tokens
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


@users.command("reset-two-factor")
@click.argument("email")
def reset_two_factor_command(email: str) -> None:
    """Turn off EMAIL's second factor, for someone who lost both the app and the recovery
    codes; they log in with the password and set it up again."""

    user = services.find_user(email)
    if user is None:
        raise click.ClickException(f"no user {email!r}")
    totp.remove(user)
    audit.record_cli("cli.users_reset_two_factor", target=f"user_id={user.id}")
    click.echo(f"two-factor authentication is off for {user.email}")


@tokens.command("create")
@click.argument("email")
@click.option("--name", default="", help="What the token is for, to tell it apart later.")
@click.option(
    "--scope",
    "scope_names",
    multiple=True,
    type=click.Choice(scopes.ALL_SCOPES),
    help="What it may do (repeat for several); default: all of read, write and send.",
)
@click.option(
    "--expires-days",
    type=click.IntRange(1, api_tokens.MAX_EXPIRES_DAYS),
    default=None,
    help="Stop working after this many days (default: never).",
)
def create_token_command(
    email: str, name: str, scope_names: tuple[str, ...], expires_days: int | None
) -> None:
    """Print a new API token for the user EMAIL, alone on stdout (it is shown only once)."""

    user = services.find_user(email)
    if user is None:
        raise click.ClickException(f"no user {email!r}")
    try:
        new = api_tokens.create_token(
            user, name=name, scope_names=scope_names or scopes.ALL_SCOPES, expires_days=expires_days
        )
    except NewsletterError as error:
        raise click.ClickException(error.message) from None
    audit.record_cli(
        "cli.tokens_create",
        target=f"user_id={user.id}",
        detail={"token_id": new.row.id, "scopes": new.row.scopes},
    )
    click.echo(new.secret)


@tokens.command("list")
def list_tokens_command() -> None:
    """One line per token: id, owner, name, prefix, scopes, times and status (never the token)."""

    for row in api_tokens.list_tokens():
        click.echo(
            " ".join(
                [
                    f"id={row.id}",
                    f"owner={row.user.email}",
                    f"name={shlex.quote(row.name)}",
                    f"prefix={row.prefix}",
                    f"scopes={','.join(row.scopes.split())}",
                    f"created={_when(row.created_at)}",
                    f"last_used={_when(row.last_used_at)}",
                    f"expires={_when(row.expires_at)}",
                    f"status={api_tokens.status(row)}",
                ]
            )
        )


@tokens.command("revoke")
@click.argument("token_id", metavar="ID", type=click.IntRange(1))
def revoke_token_command(token_id: int) -> None:
    """Make the token ID (from ``tokens list``) stop working at once."""

    try:
        row = api_tokens.revoke_token(token_id)
    except NewsletterError as error:
        raise click.ClickException(error.message) from None
    audit.record_cli("cli.tokens_revoke", target=f"token_id={row.id}")
    click.echo(f"revoked id={row.id} prefix={row.prefix} owner={row.user.email}")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else "never"


def register(app: Flask) -> None:
    """Add this domain's commands to ``app.cli``."""
    app.cli.add_command(users)
    app.cli.add_command(tokens)
