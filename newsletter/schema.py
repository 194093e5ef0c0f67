"""The database schema: bring it up to date (Alembic, through Flask-Migrate), or say what
it lacks."""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from alembic import command
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
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


def upgrade_database() -> str | None:
    """Apply the migrations, silently: the revision the schema was brought to, or ``None``
    when it was up to date already (the caller decides whether to say so).

    Alembic says a line per migration on its own; that is for ``newsletter db upgrade``
    (Flask-Migrate's command), not for every command that happens to find a new database.
    The ``quiet`` attribute tells ``migrations/env.py`` to leave logging as it is.
    """
    config = current_app.extensions["migrate"].migrate.get_config()
    config.attributes["quiet"] = True
    before = _applied()
    with _alembic_quiet():
        command.upgrade(config, "head")
    after = _applied()
    return None if after == before else ", ".join(sorted(after))


def _applied() -> set[str]:
    """The revisions the database records as applied."""
    with _alembic_quiet(), db.engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


@contextmanager
def _alembic_quiet() -> Iterator[None]:
    """Alembic's logger keeps to warnings in the block: its INFO lines ("Context impl
    SQLiteImpl.", one per migration) would reach the handlers ``newsletter run`` sets up."""
    alembic_logger = logging.getLogger("alembic")
    level = alembic_logger.level
    alembic_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        alembic_logger.setLevel(level)


def schema_state() -> SchemaState:
    """Where the app's database stands (in an app context)."""
    script = ScriptDirectory.from_config(current_app.extensions["migrate"].migrate.get_config())
    applied = _applied()
    with db.engine.connect() as connection:
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
