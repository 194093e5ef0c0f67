"""Commands of this domain for the ``newsletter`` CLI: ``newsletter statements import``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup

from newsletter.content.archives import UnsafeArchive
from newsletter.content.statements import import_paths, markdown_files

statements_cli = AppGroup("statements", help="Statements: Markdown posts with front matter.")


@statements_cli.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def import_command(paths: tuple[Path, ...]) -> None:
    """Import Markdown files, folders of Jekyll posts (*.md, *.markdown, recursively; only
    _posts/ when there is one) and zip files of them.

    A statement with the same slug (or permalink) is updated, and the line says what
    changed. Bad files are listed with the reason and the command exits with status 1; the
    good ones are imported all the same. A zip that is unsafe (paths outside its folder,
    too large unpacked) is refused and then nothing is imported.
    """

    files, _ = markdown_files(list(paths))
    try:
        if sys.stdout.isatty() and len(files) > 20:
            with click.progressbar(length=len(files), label="Importing") as bar:
                report = import_paths(list(paths), progress=lambda _file: bar.update(1))
        else:
            report = import_paths(list(paths))
    except UnsafeArchive as error:
        click.echo(f"error    {error.message}", err=True)
        sys.exit(1)
    for result in report.results:
        verb, _, rest = result.describe().partition(" ")
        title = f"  {result.statement.title}" if result.created else ""
        click.echo(f"{verb:<8} {rest}{title}")
    for source, warning in report.warnings:
        click.echo(f"warning  {source}: {warning}", err=True)
    for source, reason in report.errors:
        click.echo(f"error    {source}: {reason}", err=True)
    errors = len(report.errors)
    click.echo(
        f"{len(report.created)} created, {len(report.updated)} updated, "
        f"{errors} error{'' if errors == 1 else 's'}"
    )
    if errors:
        sys.exit(1)


def register(app: Flask) -> None:
    """Add this domain's commands to ``app.cli``."""
    app.cli.add_command(statements_cli)
