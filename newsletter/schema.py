"""The database schema: bring it up to date (Alembic, through Flask-Migrate)."""

from __future__ import annotations

import logging

from flask_migrate import upgrade


def upgrade_database() -> None:
    """Apply the migrations."""
    upgrade()
    # Alembic's logging setup silences the loggers we rely on; give them back.
    logging.getLogger("werkzeug").setLevel(logging.INFO)
    logging.getLogger("newsletter").setLevel(logging.INFO)
