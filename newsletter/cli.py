"""The ``newsletter`` command: a Flask CLI group over the app's own commands."""

from __future__ import annotations

import os

import click
from flask import Flask
from flask.cli import FlaskGroup

from newsletter import create_app
from newsletter.commands import exit_with, run_command, worker_command
from newsletter.errors import ConfigError


def _create_app() -> Flask:
    try:
        return create_app()
    except ConfigError as error:
        # One clear line, no traceback: the operator fixes the setting and starts again.
        exit_with(error)
        raise  # unreachable: exit_with leaves


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False,
             add_version_option=False)
def main() -> None:
    """Manage and run the newsletter app."""


# Listed without building an app, so `newsletter run --help` works before any setting does.
main.add_command(run_command)
main.add_command(worker_command)


def entry_point() -> None:
    """The ``newsletter`` program. What it writes (the database, the outbox, keys) is for
    its owner alone, whatever the shell's umask; ``main`` is the group itself, for tests."""
    os.umask(0o077)
    main()


if __name__ == "__main__":
    entry_point()
