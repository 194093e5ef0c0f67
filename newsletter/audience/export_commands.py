"""``newsletter subscribers export [--list SLUG] [--segment ID]``: CSV on stdout, streamed."""

from __future__ import annotations

import sys

import click

from newsletter import audit
from newsletter.audience.commands import subscribers_cli
from newsletter.audience.export import start_export
from newsletter.errors import NewsletterError


@subscribers_cli.command("export")
@click.option("--list", "list_slug", default=None, help="Only this list's confirmed members.")
@click.option("--segment", "segment_id", default=None, type=click.IntRange(min=1),
              help="Only the subscribers this segment (by id) matches.")
def export_command(list_slug: str | None, segment_id: int | None) -> None:
    """Write subscribers as CSV to stdout: everyone, a list's confirmed members, a
    segment, or both narrowed together. Columns: email,name,status,lists,created_at and one
    per attribute; cells a spreadsheet would run as formulas start with '."""
    try:
        pieces = start_export(list_slug=list_slug, segment_id=segment_id)
    except NewsletterError as error:
        raise click.ClickException(error.message) from None
    audit.record_cli(
        "cli.subscribers_export", target=f"list={list_slug or '-'} segment={segment_id or '-'}"
    )
    out = sys.stdout
    for piece in pieces:
        out.write(piece)
    out.flush()
