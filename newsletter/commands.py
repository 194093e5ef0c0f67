"""The app's commands: ``run`` and ``worker`` here, because they start the whole app; the
domain command groups live beside their domain (``audience/commands.py`` …) and are
registered here. The ``newsletter`` entry point itself is ``cli.py``.
"""

from __future__ import annotations

import copy
import errno
import functools
import importlib
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from werkzeug.serving import BaseWSGIServer, make_server, select_address_family

from newsletter.audience import commands as audience_commands
from newsletter.audience import export_commands as _export_commands  # noqa: F401 (registers)
from newsletter.audience.import_jobs import recover_stalled as recover_stalled_imports
from newsletter.auth import commands as auth_commands
from newsletter.auth.services import first_admin_setup_url, needs_first_admin
from newsletter.broker import is_embedded, start_worker_threads, stop_worker
from newsletter.checks import check_services
from newsletter.config import follow_served_address, http_url, listens_everywhere
from newsletter.content import commands as content_commands
from newsletter.delivery import commands as delivery_commands
from newsletter.delivery.bounces import commands as bounce_commands
from newsletter.delivery.send.dispatcher import recover_unfinished
from newsletter.delivery.transactional import recover_queued
from newsletter.delivery.workers import run_workers, start_sweeper
from newsletter.errors import ConfigError
from newsletter.extensions import db
from newsletter.ops import logs
from newsletter.schema import ensure_schema, upgrade_database


@click.command("run")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=int,
              help="Port to listen on (0: any free one).")
@with_appcontext
def run_command(host: str, port: int) -> None:
    """Migrate the database, then serve the app (and, on the embedded queue, its workers)."""
    app = _current_app()
    logs.setup(app)
    # A taken address is the first thing said, before any link to an address not served.
    server = _listen(app, host, port)
    follow_served_address(app, host, server.port)
    if listens_everywhere(host) and app.config["BASE_URL_FOLLOWS_SERVER"]:
        click.echo(f"Links in mail point to {app.config['BASE_URL']}; set NEWSLETTER_BASE_URL "
                   "to the address your readers use.")
    _check_services(app)
    revision = upgrade_database()
    if revision is not None:
        click.echo(f"Database schema brought up to date (revision {revision}).")
    worker = sweeper = None
    if is_embedded(app):
        worker = start_worker_threads(app)
        _recover()
        sweeper = start_sweeper(app)
    else:
        click.echo("Queue: external broker; start workers with `newsletter worker`.")
    _announce_first_admin()
    _release_session()
    # SIGTERM (service managers) stops as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    click.echo(f"Serving on {http_url(host, server.port)}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if sweeper is not None:
            sweeper.stop()
        if worker is not None:
            stop_worker(worker)


@click.command("worker")
@click.option("--processes", "-p", default=1, show_default=True, type=click.IntRange(min=1),
              help="Worker processes to start.")
@click.option("--threads", "-t", default=None, type=click.IntRange(min=1),
              help="Threads per process [default: WORKER_THREADS, 2].")
@with_appcontext
def worker_command(processes: int, threads: int | None) -> None:
    """Run Dramatiq workers on the configured broker (NEWSLETTER_BROKER_URL)."""
    app = _current_app()
    if is_embedded(app):
        raise click.ClickException(
            "no shared queue to work on: set NEWSLETTER_BROKER_URL (redis://… or amqp://…) "
            "for separate workers. On the embedded default, `newsletter run` already runs "
            "the workers inside the web process."
        )
    _check_services(app, need_schema=True)
    logs.setup(app)
    _recover()
    _release_session()
    sys.exit(run_workers(app, processes=processes, threads=threads))


def _listen(app: Flask, host: str, port: int) -> BaseWSGIServer:
    """Bind the address now, or stop with one line saying why (and nothing else)."""
    try:
        listener = socket.create_server((host, port), family=select_address_family(host, port))
    except OSError as error:
        # create_server adds the address to the reason; the line names it once.
        reason = str(error.strerror or error).partition(" (while attempting")[0]
        if error.errno == errno.EADDRINUSE:
            reason += "; stop the program using it or choose another --port"
        click.echo(f"newsletter: cannot listen on {host}:{port}: {reason}", err=True)
        sys.exit(1)
    with listener:  # the server serves a duplicate of it
        return make_server(host, port, app, threaded=True, fd=listener.fileno())


def _check_services(app: Flask, *, need_schema: bool = False) -> None:
    """Stop with one line when the database or the broker cannot be reached."""
    try:
        check_services(app, need_schema=need_schema)
    except ConfigError as error:
        exit_with(error)


def exit_with(error: ConfigError) -> None:
    """Stop the command with one line naming the setting at fault."""
    click.echo(f"newsletter: configuration error: {error}", err=True)
    sys.exit(2)


def _current_app() -> Flask:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    return app


def _recover() -> None:
    queued = recover_unfinished()
    if queued:
        click.echo(f"Resumed unfinished sends: {queued} jobs queued.")
    waiting = recover_queued()  # the embedded queue died with the last process
    if waiting:
        click.echo(f"Queued again: {waiting} transactional messages.")
    imports = recover_stalled_imports()
    if imports:
        click.echo(f"Resumed unfinished imports: {imports}.")


def _announce_first_admin() -> None:
    if needs_first_admin():
        click.echo("No admin account yet. Open this link to create the first one:")
        click.echo(f"  {first_admin_setup_url()}")


def _release_session() -> None:
    db.session.remove()


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def register(app: Flask) -> None:
    """Add the app's commands to ``app.cli`` (``flask --app newsletter …`` sees them too).

    The commands of the domains that keep their data in the database bring its schema up to
    date before they run (see ``ensure_schema``); ``run`` migrates by itself, ``db`` is
    Flask-Migrate's own, and the bench and DKIM keys need none of the instance's tables.
    """
    app.cli.add_command(run_command)
    app.cli.add_command(worker_command)

    before = set(app.cli.commands)
    for module in (audience_commands, auth_commands, content_commands, delivery_commands,
                   bounce_commands):
        module.register(app)
    for name in set(app.cli.commands) - before:
        app.cli.commands[name] = _schema_first(app.cli.commands[name])

    # The doctor reports a missing migration as a finding, rather than applying it.
    for name, target, short_help in _LAZY_COMMANDS:
        app.cli.add_command(LazyCommand(name, target, short_help))


#: commands whose modules load only when they run: the bench, dkimpy, cryptography and
#: dnspython would otherwise take about 15 MB of every process (web and workers included)
_LAZY_COMMANDS = (
    ("bench", "newsletter.bench.commands:bench_group",
     "Measure the send, the import and the pages against this machine's limits."),
    ("dkim", "newsletter.mail.dkim_commands:dkim_group", "Make and list DKIM keys."),
    ("doctor", "newsletter.ops.commands:doctor_command",
     "Check the settings, the services, the relays and DNS."),
    ("backup", "newsletter.ops.commands:backup_command",
     "Write a backup of the database and the instance's files."),
    ("restore", "newsletter.ops.commands:restore_command",
     "Restore a backup into an empty instance."),
)


class LazyCommand(click.Command):
    """A command listed by its name and one line of help, whose module is imported only when
    it runs or shows its own help (``target`` is ``module:attribute``)."""

    def __init__(self, name: str, target: str, short_help: str) -> None:
        super().__init__(name, short_help=short_help)
        self.target = target

    def load(self) -> click.Command:
        """The real command."""
        module, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command), self.target
        return command

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        """The real command's context: click then invokes the real command."""
        return self.load().make_context(info_name, args, parent=parent, **extra)


def _schema_first(command: click.Command) -> click.Command:
    """A copy of ``command`` (of each of its subcommands, for a group) that brings the
    schema up to date before it runs: after ``--help`` and the arguments are handled, so
    asking for help changes nothing. A copy, because the domains' groups are module-level
    objects that every app built in this process registers again."""
    command = copy.copy(command)
    if isinstance(command, click.Group):
        command.commands = {name: _schema_first(sub) for name, sub in command.commands.items()}
    elif command.callback is not None:
        command.callback = _after_schema(command.callback)
    return command


def _after_schema(callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def with_schema(*args: Any, **kwargs: Any) -> Any:
        try:
            ensure_schema()
        except ConfigError as error:
            exit_with(error)
        return callback(*args, **kwargs)

    return with_appcontext(with_schema)

