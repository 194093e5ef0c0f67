"""``newsletter doctor``."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import with_appcontext

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
