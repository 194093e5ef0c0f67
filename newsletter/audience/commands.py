"""``newsletter lists …`` and ``newsletter subscribers …``."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from newsletter import audit
from newsletter.audience.importer import (
    ImportOptions,
    ImportResult,
    default_mode,
    import_file,
)
from newsletter.audience.lists import create_list, list_lists
from newsletter.audience.models import ImportMode, OptIn
from newsletter.audience.subscriptions import find_subscriber, revoke_links
from newsletter.broker import run_queued_here
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
@click.option("--list", "list_slug", default=None,
              help="Slug of the list (required to subscribe; unsubscribe: every list if none).")
@click.option(
    "--mode",
    type=click.Choice([mode.value for mode in ImportMode]),
    default=None,
    help="subscribe (confirmed), unconfirmed (and mail a confirmation link), unsubscribe or "
    "blocklist [default: subscribe on a single opt-in list, else unconfirmed without mail].",
)
@click.option("--confirmed", is_flag=True, help="The same as --mode subscribe.")
@click.option(
    "--send-confirmations/--no-send-confirmations",
    default=None,
    help="Mail unconfirmed rows a confirmation link [default: yes with --mode unconfirmed].",
)
@click.option("--overwrite/--keep", default=True, show_default=True,
              help="Names and attributes in the file replace those of people we have, or not.")
@click.option("--encoding", default=None, help="The file's encoding [default: detected].")
@click.option("--delimiter", default=None,
              help="The delimiter: , ; | or tab [default: detected].")
@click.option("--label", default="",
              help="How these people consented; kept with the file's name in each new "
                   "subscription's record of consent.")
def import_command(
    file: Path,
    list_slug: str | None,
    mode: str | None,
    confirmed: bool,
    send_confirmations: bool | None,
    overwrite: bool,
    encoding: str | None,
    delimiter: str | None,
    label: str,
) -> None:
    """Import subscribers from a CSV or TSV file with a header row.

    Columns: email (or Email Address), name (or First Name and Last Name), lists (slugs
    separated by | or ;) and any others as attributes; listmonk's and Mailchimp's exports
    work as they are. Bad rows are listed by line and skipped, the good ones imported. Exits
    0 when the file was imported, 1 only when it was refused whole.
    """
    try:
        options = replace(
            _options(list_slug, mode, confirmed, send_confirmations, overwrite, encoding,
                     delimiter),
            file_name=file.name, label=label,
        )
        result = _import_with_progress(file, options)
    except NewsletterError as error:
        raise click.ClickException(error.message) from None
    audit.record_cli(
        "cli.subscribers_import",
        target=f"slug={list_slug or '-'}",
        detail={"mode": options.mode.value, **result.counts()},
    )
    _report(result)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if result.confirmations_queued and not run_queued_here(app):
        click.echo("Some confirmation mails wait for a retry; `newsletter run` sends them.")


@subscribers_cli.command("revoke-links")
@click.argument("email")
def revoke_links_command(email: str) -> None:
    """Make the manage and unsubscribe links in every mail sent to EMAIL so far open
    nothing (someone else holds them); the next mail to them carries new ones."""
    subscriber = find_subscriber(email)
    if subscriber is None:
        # As plain as the other commands' answers (``subscribers export`` lists everyone
        # anyway): whoever runs commands may know who is on file.
        raise click.ClickException(f"no subscriber {email!r}")
    revoke_links(subscriber.id)
    # The id, not the address: the audit log keeps no subscriber's data.
    audit.record_cli("cli.subscribers_revoke_links", target=f"subscriber_id={subscriber.id}")
    click.echo(
        f"Revoked the links in mail sent to {subscriber.email} so far; "
        "the next mail carries new ones."
    )


def _options(
    list_slug: str | None,
    mode: str | None,
    confirmed: bool,
    send_confirmations: bool | None,
    overwrite: bool,
    encoding: str | None,
    delimiter: str | None,
) -> ImportOptions:
    if mode is not None and confirmed and mode != ImportMode.SUBSCRIBE.value:
        raise click.UsageError("--confirmed means --mode subscribe; choose one")
    if mode is None and list_slug is None:
        raise click.UsageError("choose the list with --list SLUG")
    chosen = ImportMode(mode) if mode else default_mode(str(list_slug), confirmed)
    if send_confirmations is None:
        send_confirmations = mode == ImportMode.UNCONFIRMED.value
    return ImportOptions(
        list_slug=list_slug,
        mode=chosen,
        overwrite=overwrite,
        send_confirmations=send_confirmations,
        encoding=encoding,
        delimiter=delimiter,
    )


def _import_with_progress(file: Path, options: ImportOptions) -> ImportResult:
    def bad(line: int, reason: str, cells: list[str]) -> None:
        click.echo(f"line {line}: {reason}", err=True)

    with file.open("rb") as stream:
        if not sys.stdout.isatty():
            return import_file(stream, options, on_bad=bad)
        size = file.stat().st_size
        with click.progressbar(length=size, label=f"Importing {file.name}") as bar:
            done = [0]

            def advance(offset: int) -> None:
                bar.update(offset - done[0])
                done[0] = offset

            return import_file(stream, options, on_bad=bad, progress=advance)


def _report(result: ImportResult) -> None:
    click.echo(
        f"rows={result.rows} imported={result.imported} bad={result.bad} "
        f"created={result.created} updated={result.updated} merged={result.merged} "
        f"subscribed={result.subscribed} already={result.already} "
        f"kept_unsubscribed={result.kept_unsubscribed} "
        f"awaiting_confirmation={result.awaiting_confirmation} "
        f"unsubscribed={result.unsubscribed} blocklisted={result.blocklisted} "
        f"not_found={result.not_found}"
    )
    click.echo(f"Read as {result.encoding}, delimiter {result.delimiter!r}.")
    if result.ignored_columns:
        click.echo(f"Columns left out: {', '.join(result.ignored_columns)}.")
    if result.confirmations_queued:
        click.echo(f"Queued {result.confirmations_queued} confirmation mails.")
    elif result.awaiting_confirmation:
        click.echo(
            f"{result.awaiting_confirmation} subscriptions await confirmation and get no mail "
            "until confirmed (--mode subscribe if they already agreed, or --send-confirmations)."
        )


def register(app: Flask) -> None:
    """Add this domain's commands to ``app.cli``."""
    app.cli.add_command(lists_cli)
    app.cli.add_command(subscribers_cli)
