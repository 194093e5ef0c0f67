"""The database schema: bring it up to date (Alembic, through Flask-Migrate), or say what
it lacks."""

from __future__ import annotations

import enum
import logging

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from flask_migrate import upgrade
from sqlalchemy import inspect

from newsletter.errors import ConfigError
from newsletter.extensions import db


class SchemaState(enum.Enum):
    """How the database's schema stands against this version's migrations."""

    CURRENT = "current"
    #: none of our tables: a new database
    EMPTY = "empty"
    #: our tables without Alembic's record of a revision: made from the models (the tests)
    UNVERSIONED = "unversioned"
    #: an older revision: migrations are waiting
    BEHIND = "behind"
    #: a revision these migrations do not have: a newer version migrated it
    UNKNOWN = "unknown"


def upgrade_database() -> None:
    """Apply the migrations."""
    upgrade()
    # Alembic's logging setup silences the loggers we rely on; give them back.
    logging.getLogger("werkzeug").setLevel(logging.INFO)
    logging.getLogger("newsletter").setLevel(logging.INFO)


def schema_state() -> SchemaState:
    """Where the app's database stands (in an app context)."""
    script = ScriptDirectory.from_config(current_app.extensions["migrate"].migrate.get_config())
    with db.engine.connect() as connection:
        applied = set(MigrationContext.configure(connection).get_current_heads())
        # Any table of ours will do: the first migration creates them all at once.
        has_tables = inspect(connection).has_table("users")
    if not applied:
        return SchemaState.UNVERSIONED if has_tables else SchemaState.EMPTY
    if applied == set(script.get_heads()):
        return SchemaState.CURRENT
    known = {revision.revision for revision in script.walk_revisions()}
    return SchemaState.BEHIND if applied <= known else SchemaState.UNKNOWN


def ensure_schema() -> None:
    """Bring the schema up to date on SQLite (the embedded default: nobody else to run the
    migrations); on any other database only check it, since an upgrade there is the
    operator's step (``newsletter db upgrade``), taken once for every process.

    :raises ConfigError: the schema is not up to date, and this function may not make it so.
    """
    state = schema_state()
    if state in (SchemaState.CURRENT, SchemaState.UNVERSIONED):
        return
    if state is not SchemaState.UNKNOWN and db.engine.dialect.name == "sqlite":
        upgrade_database()
        return
    raise ConfigError("NEWSLETTER_DATABASE_URL", schema_advice(state))


def schema_advice(state: SchemaState) -> str:
    """What to do about a schema in ``state`` (one line)."""
    if state is SchemaState.EMPTY:
        return "the database has no tables yet; run `newsletter db upgrade`"
    if state is SchemaState.BEHIND:
        return "the database schema is older than this version; run `newsletter db upgrade`"
    if state is SchemaState.UNKNOWN:
        return "the database schema is newer than this version of newsletter; upgrade it"
    return "the database schema is up to date"
