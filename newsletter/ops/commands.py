"""``newsletter doctor``, ``newsletter backup`` and ``newsletter restore``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from newsletter.ops import backup as backups
from newsletter.ops import doctor


@click.command("doctor")
@with_appcontext
def doctor_command() -> None:
    """Check the settings, services, relays, the sending domain's DNS and the mailbox
    providers' rules for bulk senders: one line per check (pass, warn or fail, then what
    to do). Exits 1 when a check fails."""
    findings = doctor.run(current_app._get_current_object())  # type: ignore[attr-defined]
    for finding in findings:
        click.echo(finding.line())
    failed = sum(1 for finding in findings if finding.status == doctor.FAIL)
    warned = sum(1 for finding in findings if finding.status == doctor.WARN)
    click.echo(f"{len(findings)} checks: {failed} failed, {warned} warnings")
    sys.exit(1 if failed else 0)


@click.command("backup")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@with_appcontext
def backup_command(folder: Path) -> None:
    """Back up the database, the secret key and the DKIM keys into FOLDER (new or empty),
    while the app runs. Restore with `newsletter restore FOLDER`."""
    try:
        made = backups.backup(current_app._get_current_object(), folder)  # type: ignore[attr-defined]
    except backups.BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"backed up the {made.database} database, "
               f"{'the secret key, ' if made.secret_key else ''}{made.dkim_keys} DKIM key(s) "
               f"to {made.folder}")


@click.command("restore")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@with_appcontext
def restore_command(folder: Path) -> None:
    """Restore a backup FOLDER into the configured database, which must be empty; then start
    the app or the workers: interrupted sends go on."""
    try:
        done = backups.restore(current_app._get_current_object(), folder)  # type: ignore[attr-defined]
    except backups.BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"restored the {done.database} database from {done.folder}")
