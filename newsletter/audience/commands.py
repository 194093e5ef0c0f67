"""``newsletter lists …`` and ``newsletter subscribers …``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup

from newsletter import audit
from newsletter.audience.importer import ImportResult, import_csv
from newsletter.audience.lists import create_list, list_lists
from newsletter.audience.models import OptIn
from newsletter.errors import NewsletterError

lists_cli = AppGroup("lists", help="Mailing lists.")
subscribers_cli = AppGroup("subscribers", help="Subscribers.")


@lists_cli.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="The name people see.")
@click.option("--description", default="", help="One or two sentences for the signup page.")
@click.option("--single-optin", is_flag=True, help="Subscribe without a confirmation mail.")
@click.option("--private", is_flag=True, help="Leave it off the public signup page.")
def create_list_command(
    slug: str, name: str, description: str, single_optin: bool, private: bool
) -> None:
    """Make a list (double opt-in and public unless told otherwise)."""
    try:
        lst = create_list(
            slug,
            name,
            description=description,
            optin=OptIn.SINGLE if single_optin else OptIn.DOUBLE,
            public=not private,
        )
    except NewsletterError as error:
        raise click.ClickException(error.message) from None
    audit.record_cli("cli.lists_create", target=f"list_id={lst.id} slug={lst.slug}")
    click.echo(
        f"Created list {lst.slug} ({lst.name}): {lst.optin.value} opt-in, "
        f"{'public' if lst.public else 'private'}."
    )


@lists_cli.command("list")
def list_lists_command() -> None:
    """Show every list."""
    for lst in list_lists():
        visibility = "public" if lst.public else "private"
        click.echo(f"{lst.slug}\t{lst.name}\t{lst.optin.value}\t{visibility}")


@subscribers_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--list", "list_slug", required=True, help="Slug of the list to subscribe to.")
@click.option("--confirmed", is_flag=True, help="These people already agreed: confirm them.")
@click.option(
    "--send-confirmations",
    is_flag=True,
    help="On a double opt-in list, mail each new unconfirmed subscriber a confirmation link.",
)
def import_command(file: Path, list_slug: str, confirmed: bool, send_confirmations: bool) -> None:
    """Import subscribers from a CSV file with the header ``email,name[,…]``.

    Extra columns become subscriber attributes. Bad rows are listed and skipped; the good
    ones are imported in one transaction. Exits 1 when any row was bad.
    """
    try:
        result = _import_with_progress(file, list_slug, confirmed, send_confirmations)
    except NewsletterError as error:
        raise click.ClickException(error.message) from None
    except UnicodeDecodeError as error:
        raise click.ClickException(f"{file} is not UTF-8 text ({error.reason})") from None
    audit.record_cli(
        "cli.subscribers_import",
        target=f"slug={list_slug}",
        detail={
            "confirmed": confirmed,
            "created": result.created,
            "updated": result.updated,
            "subscribed": result.subscribed,
            "bad": len(result.bad_rows),
        },
    )
    _report(result)
    if result.bad_rows:
        sys.exit(1)


def _import_with_progress(
    file: Path, list_slug: str, confirmed: bool, send_confirmations: bool
) -> ImportResult:
    # utf-8-sig: spreadsheets often start their CSV with a byte-order mark.
    with file.open(newline="", encoding="utf-8-sig") as stream:
        if not sys.stdout.isatty():
            return import_csv(
                stream,
                list_slug=list_slug,
                confirmed=confirmed,
                send_confirmations=send_confirmations,
            )
        with file.open(encoding="utf-8-sig") as counting:
            rows = max(sum(1 for _ in counting) - 1, 0)
        with click.progressbar(length=rows, label=f"Importing {file.name}") as bar:
            return import_csv(
                stream,
                list_slug=list_slug,
                confirmed=confirmed,
                send_confirmations=send_confirmations,
                progress=bar.update,
            )


def _report(result: ImportResult) -> None:
    click.echo(
        f"created={result.created} updated={result.updated} subscribed={result.subscribed} "
        f"already={result.already} kept_unsubscribed={result.kept_unsubscribed} "
        f"awaiting_confirmation={result.awaiting_confirmation} bad={len(result.bad_rows)}"
    )
    if result.confirmations_queued:
        click.echo(f"Queued {result.confirmations_queued} confirmation mails.")
    elif result.awaiting_confirmation:
        click.echo(
            f"{result.awaiting_confirmation} subscriptions await confirmation and get no mail "
            "until confirmed (use --confirmed if they already agreed, or --send-confirmations)."
        )
    for line, reason in result.bad_rows:
        click.echo(f"line {line}: {reason}", err=True)


def register(app: Flask) -> None:
    """Add this domain's commands to ``app.cli``."""
    app.cli.add_command(lists_cli)
    app.cli.add_command(subscribers_cli)
