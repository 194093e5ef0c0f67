"""The ``newsletter`` command: a Flask CLI group with the app's own commands.

Domain command groups live beside their domain (``audience/commands.py`` …) and are
registered here; ``run`` and ``worker`` are here because they start the whole app.
"""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import FlaskGroup

from newsletter.errors import ConfigError


def _create_app() -> Flask:
    from newsletter import create_app

    try:
        return create_app()
    except ConfigError as error:
        # One clear line, no traceback: the operator fixes the setting and starts again.
        click.echo(f"newsletter: configuration error: {error}", err=True)
        sys.exit(2)


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False,
             add_version_option=False)
def main() -> None:
    """Manage and run the newsletter app."""


def register(app: Flask) -> None:
    """Add the app's commands to ``app.cli`` (``flask --app newsletter …`` sees them too)."""
    from newsletter.audience import commands as audience_commands
    from newsletter.auth import commands as auth_commands
    from newsletter.content import commands as content_commands
    from newsletter.delivery import commands as delivery_commands

    for module in (audience_commands, auth_commands, content_commands, delivery_commands):
        module.register(app)
