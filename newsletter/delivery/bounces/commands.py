"""``newsletter bounces import PATH…`` and ``newsletter bounces serve [--host H] [--port P]``.

``import`` prints one line per message, ending exactly ``kind=hard|soft|complaint|ignored
recipient=ADDRESS`` (``recipient=-`` when none). A message the classifier cannot read is
kept for an editor (the admin's Bounces page) and printed as ``kind=ignored`` with
``kept for review (unread #ID)`` before that ending. Importing does not change the files:
importing the same message twice records it twice.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from newsletter.delivery.bounces import intake, policy
from newsletter.delivery.bounces.models import BounceSource
from newsletter.errors import NewsletterError

bounces_group = AppGroup("bounces", help="Read bounces and complaints sent back to us.")


def register(app: Flask) -> None:
    """Add the ``bounces`` group to ``app.cli``."""
    app.cli.add_command(bounces_group)


@bounces_group.command("import")
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))  # fmt: skip
def import_command(paths: tuple[Path, ...]) -> None:
    """Classify and record the messages in PATHS: .eml files and Maildir folders.

    One line per message, ending `kind=hard|soft|complaint|ignored recipient=ADDRESS`
    (`-` when none); an unreadable one is kept for review and shown as `kind=ignored`.
    """
    limit = int(current_app.config["BOUNCE_MAX_BYTES"])
    counts: dict[str, int] = {}
    for path in paths:
        try:
            for message in intake.messages_under(path, limit):
                outcome = policy.take_message(message.raw, BounceSource.IMPORT)
                counts[outcome.kind] = counts.get(outcome.kind, 0) + 1
                click.echo(intake.outcome_line(message.label, outcome))
        except NewsletterError as error:
            click.echo(f"error: {error.message}", err=True)
            sys.exit(1)
    if sys.stderr.isatty():
        summary = ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items()))
        click.echo(f"{sum(counts.values())} messages: {summary or 'none'}", err=True)


@bounces_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8024, show_default=True, type=int,
              help="Port to listen on (0: any free one).")  # fmt: skip
@click.option("--protocol", type=click.Choice(["lmtp", "smtp"]), default="lmtp",
              show_default=True, help="What the MTA speaks to us.")  # fmt: skip
def serve_command(host: str, port: int, protocol: str) -> None:
    """Take bounce mail from an MTA over LMTP (or SMTP) until interrupted."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def ready(bound: int) -> None:
        click.echo(f"Taking bounces over {protocol.upper()} on {host}:{bound}", err=True)

    try:
        asyncio.run(intake.serve(app, host, port, protocol=protocol, ready=ready))
    except KeyboardInterrupt:
        pass
    except OSError as error:
        click.echo(f"error: cannot listen on {host}:{port}: {error.strerror}", err=True)
        sys.exit(1)
