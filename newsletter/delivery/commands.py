"""Commands of this domain for the ``newsletter`` CLI: ``newsletter issues send ID [--wait]``,
``issues schedule ID WHEN [--timezone TZ]``, ``issues unschedule|pause|resume|cancel|retry ID``,
``issues status ID`` and ``newsletter deliveries search --email X [--issue N]``."""

from __future__ import annotations

import sys
import time
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from newsletter.broker import is_embedded, start_worker_threads, stop_worker
from newsletter.content.models import Issue
from newsletter.delivery.control import actions as control
from newsletter.delivery.control import log, timezones
from newsletter.delivery.control.progress import progress
from newsletter.delivery.send import dispatcher
from newsletter.errors import NewsletterError
from newsletter.extensions import db

#: seconds between two looks at the progress while waiting
POLL_SECONDS = 0.5

issues_group = AppGroup("issues", help="Send issues and follow their progress.")


def register(app: Flask) -> None:
    """Add this domain's commands to ``app.cli``."""
    existing = app.cli.commands.get("issues")
    if isinstance(existing, click.Group):
        # Another domain may already own an ``issues`` group: add to it, do not replace it.
        for command in issues_group.commands.values():
            existing.add_command(command)
    else:
        app.cli.add_command(issues_group)
    app.cli.add_command(deliveries_group)


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
        reason = db.session.scalar(select(Issue.send_error).where(Issue.id == issue_id))
        if reason:
            click.echo(reason, err=True)
        sys.exit(1)


def _report(issue_id: int, state: dict[str, Any], *, already: bool = False) -> None:
    click.echo(
        f"Issue {issue_id} {'was already ' if already else ''}{state['status']}: "
        f"{state['sent']} sent, {state['failed']} failed, "
        f"{state['skipped']} skipped of {state['total']}."
    )


def _wait_for(app: Flask, issue_id: int, *, resume: bool) -> dict[str, Any]:
    """Poll the progress until the issue stops sending; on the embedded queue, run the work."""

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
            try:
                state = dispatcher.progress(issue_id)
            except DBAPIError as error:
                # The database is restarting or unreachable: the workers retry their
                # batches; this wait just keeps waiting for them.
                db.session.remove()
                if not shown.startswith("database"):
                    shown = f"database unreachable ({error.__class__.__name__}); waiting…"
                    click.echo(shown, err=True)
                time.sleep(POLL_SECONDS)
                continue
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


# --- control: schedule, pause, resume, cancel, retry --------------------------------------


@issues_group.command("schedule")
@click.argument("issue_id", type=int)
@click.argument("when")
@click.option(
    "--timezone", "-z", "zone_name", default="UTC", show_default=True,
    help="IANA timezone WHEN is in, unless WHEN has an offset (Europe/Berlin, America/Chicago).",
)
def schedule_command(issue_id: int, when: str, zone_name: str) -> None:
    """Send issue ISSUE_ID at WHEN ("2026-12-01 09:00", or ISO 8601 with an offset).

    A running server (or `newsletter worker`) starts it when the time comes.
    """

    try:
        zone = timezones.get_zone(zone_name)
        send_at = timezones.parse_when(when, zone)
        control.schedule(issue_id, send_at)
    except NewsletterError as error:
        raise click.ClickException(error.message) from None
    local = timezones.in_zone(send_at, str(zone.key))
    click.echo(
        f"Issue {issue_id} is scheduled for {local:%Y-%m-%d %H:%M} {zone.key}"
        f" ({send_at:%Y-%m-%d %H:%M} UTC)."
    )


@issues_group.command("unschedule")
@click.argument("issue_id", type=int)
def unschedule_command(issue_id: int) -> None:
    """Take scheduled issue ISSUE_ID back to draft."""

    _control(control.unschedule, issue_id, "is a draft again")


@issues_group.command("pause")
@click.argument("issue_id", type=int)
def pause_command(issue_id: int) -> None:
    """Pause sending issue ISSUE_ID (between two messages)."""

    _control(control.pause, issue_id, "is paused")


@issues_group.command("cancel")
@click.argument("issue_id", type=int)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def cancel_command(issue_id: int, yes: bool) -> None:
    """Cancel issue ISSUE_ID for good: whoever has not got it yet will not."""

    if not yes:
        click.confirm(f"Cancel issue {issue_id}? This cannot be undone.", abort=True)
    _control(control.cancel, issue_id, "is cancelled")


@issues_group.command("resume")
@click.argument("issue_id", type=int)
@click.option("--wait", is_flag=True, help="Return only when the issue is sent, showing "
              "progress (on the embedded queue this command then does the sending).")
def resume_command(issue_id: int, wait: bool) -> None:
    """Resume paused issue ISSUE_ID where it stopped."""

    _control(control.resume, issue_id, "is sending again")
    _follow(issue_id, wait)


@issues_group.command("retry")
@click.argument("issue_id", type=int)
@click.option("--wait", is_flag=True, help="Return only when the issue is sent again.")
def retry_command(issue_id: int, wait: bool) -> None:
    """Send the failed deliveries of sent issue ISSUE_ID again (not hard bounces)."""

    try:
        count = control.retry_failed(issue_id)
    except NewsletterError as error:
        raise click.ClickException(error.message) from None
    if not count:
        click.echo(f"Issue {issue_id}: nothing to retry (failures left are hard bounces "
                   "or blocklisted addresses).")
        return
    click.echo(f"Issue {issue_id}: retrying {count} failed "
               f"{'delivery' if count == 1 else 'deliveries'}.")
    _follow(issue_id, wait)


@issues_group.command("status")
@click.argument("issue_id", type=int)
def status_command(issue_id: int) -> None:
    """Show where issue ISSUE_ID stands: counts, rate and estimated finish."""

    try:
        state = progress(issue_id).as_dict()
    except NewsletterError as error:
        raise click.ClickException(error.message) from None
    line = (
        f"Issue {issue_id} {state['status']}: {state['sent']} sent, {state['failed']} failed, "
        f"{state['skipped']} skipped, {state['pending']} pending of {state['total']}"
    )
    if state["rate"] is not None:
        line += f"; {state['rate']} messages/s"
    if state["eta"] is not None:
        line += f"; done about {state['eta']}"
    click.echo(line + ".")


def _control(action: Any, issue_id: int, done: str) -> None:
    try:
        action(issue_id)
    except NewsletterError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"Issue {issue_id} {done}.")


def _follow(issue_id: int, wait: bool) -> None:
    """After queuing work: wait for it (``--wait``), or say where the work will happen."""

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if wait:
        final = _wait_for(app, issue_id, resume=True)
        _report(issue_id, final)
        if final["status"] != "sent":
            sys.exit(1)
    elif is_embedded(app):
        click.echo(
            "The embedded queue lives in `newsletter run`: this process's queue ends with it. "
            "Use --wait to send from here, or restart the server (it resumes every send)."
        )


# --- the delivery log ---------------------------------------------------------------------

deliveries_group = AppGroup("deliveries", help="The per-recipient delivery log.")


@deliveries_group.command("search")
@click.option("--email", help="Only deliveries to this address (whole address, any case).")
@click.option("--issue", "issue_id", type=int, help="Only this issue.")
@click.option("--status", type=click.Choice(["pending", "sent", "failed", "skipped"]),
              help="Only deliveries with this outcome.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--after", type=click.IntRange(min=0), default=0,
              help="Continue after this delivery id (printed at the end of a full page).")
def search_command(
    email: str | None, issue_id: int | None, status: str | None, limit: int, after: int
) -> None:
    """Did an address get an issue, and what did the relay answer? One line per delivery:
    issue, address, outcome, attempts, sent at, Message-ID, the relay's last reply."""

    page = log.search(
        email=email, issue_id=issue_id, status=log.parse_status(status), after=after,
        limit=limit,
    )
    if not page.items:
        click.echo("No deliveries match.")
        return
    for entry in page.items:
        sent = entry.sent_at.strftime("%Y-%m-%d %H:%M:%S UTC") if entry.sent_at else "-"
        click.echo(
            f"issue {entry.issue_id}\t{entry.email}\t{entry.status.value}"
            f"\tattempts={entry.attempts}\t{sent}\t{entry.message_id or '-'}"
            f"\t{(entry.last_reply or '').replace(chr(10), ' ')}"
        )
    if page.next is not None:
        click.echo(f"More: --after {page.next}")
