"""Commands of this domain for the ``newsletter`` CLI: ``newsletter issues send ID [--wait]``."""

from __future__ import annotations

import sys
import time
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from newsletter.errors import NewsletterError

#: seconds between two looks at the progress while waiting
POLL_SECONDS = 0.5

issues_group = AppGroup("issues", help="Send issues and follow their progress.")


def register(app: Flask) -> None:
    """Add this domain's commands to ``app.cli``."""
    existing = app.cli.commands.get("issues")
    if isinstance(existing, click.Group):
        # Another domain may already own an ``issues`` group: add to it, do not replace it.
        existing.add_command(send_command)
    else:
        app.cli.add_command(issues_group)


@issues_group.command("send")
@click.argument("issue_id", type=int)
@click.option(
    "--wait",
    is_flag=True,
    help="Return only when the issue is sent, showing progress. On the embedded queue this "
    "command does the sending itself; an issue already sending is resumed.",
)
def send_command(issue_id: int, wait: bool) -> None:
    """Start sending issue ISSUE_ID to its lists."""
    from newsletter.broker import is_embedded
    from newsletter.delivery import dispatcher

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        status = dispatcher.progress(issue_id)["status"] if wait else None
        resuming = status == "sending"
        if status == "sent":
            # Waiting for an issue that is already sent is done at once (scripts re-run).
            _report(issue_id, dispatcher.progress(issue_id), already=True)
            return
        if resuming:
            click.echo(f"Issue {issue_id} is already sending; waiting for it to finish.")
        else:
            dispatcher.request_send(issue_id)
            click.echo(f"Issue {issue_id} is sending.")
    except NewsletterError as error:
        raise click.ClickException(error.message) from None
    if not wait:
        if is_embedded(app):
            click.echo(
                "The embedded queue lives in `newsletter run`: a running server starts this "
                "send within seconds, or at its next start (or use --wait to send it from here)."
            )
        return
    final = _wait_for(app, issue_id, resume=resuming)
    _report(issue_id, final)
    if final["status"] != "sent":
        sys.exit(1)


def _report(issue_id: int, state: dict[str, Any], *, already: bool = False) -> None:
    click.echo(
        f"Issue {issue_id} {'was already ' if already else ''}{state['status']}: "
        f"{state['sent']} sent, {state['failed']} failed, "
        f"{state['skipped']} skipped of {state['total']}."
    )


def _wait_for(app: Flask, issue_id: int, *, resume: bool) -> dict[str, Any]:
    """Poll the progress until the issue stops sending; on the embedded queue, run the work."""
    from newsletter.broker import is_embedded, start_worker_threads, stop_worker
    from newsletter.delivery import dispatcher
    from newsletter.extensions import db

    worker = None
    if is_embedded(app):
        worker = start_worker_threads(app)
    else:
        click.echo("Waiting for the workers (`newsletter worker`) to send it…")
    if resume:
        # The queue may have lost it (the embedded one surely has, with the process that
        # started the send): rebuild what is left from the rows. Duplicates are harmless.
        dispatcher.recover_unfinished()
    shown = ""
    live = sys.stdout.isatty()
    try:
        while True:
            state = dispatcher.progress(issue_id)
            line = (
                f"{state['status']}: {state['sent']} sent, {state['failed']} failed, "
                f"{state['pending']} pending of {state['total']}"
            )
            if line != shown:
                click.echo(("\r" + line) if live else line, nl=not live)
                shown = line
            if state["status"] != "sending":
                if live:
                    click.echo()
                return state
            db.session.remove()
            time.sleep(POLL_SECONDS)
    finally:
        if worker is not None:
            stop_worker(worker)
