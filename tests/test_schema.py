"""Before a command touches the database: on SQLite (the embedded default) it brings the
schema up to date; on PostgreSQL it stops with one line saying what to run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import flask_migrate
import pytest
from flask import Flask
from sqlalchemy import text

from newsletter import create_app
from newsletter.extensions import db
from newsletter.schema import SchemaState, schema_state


@pytest.fixture
def own_app(
    app_config: dict[str, Any], empty_database_url: str, keep_logging: None
) -> Iterator[Flask]:
    """An app on an empty database of the test's own, in its app context."""
    app = create_app({**app_config, "DATABASE_URL": empty_database_url})
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def create_list(app: Flask, *options: str) -> Any:
    return app.test_cli_runner().invoke(args=["lists", "create", "news", "--name", "News",
                                              *options])


def test_a_database_migrations_behind_is_brought_up_to_date_on_sqlite_only(
    own_app: Flask,
) -> None:
    flask_migrate.upgrade(revision="0004")  # as an older version of newsletter left it

    result = create_list(own_app)

    if db.engine.dialect.name == "sqlite":
        assert result.exit_code == 0, result.output
        assert schema_state() is SchemaState.CURRENT
    else:
        assert result.exit_code == 2
        assert result.output.splitlines() == [
            "newsletter: configuration error: NEWSLETTER_DATABASE_URL: the database schema "
            "is older than this version; run `newsletter db upgrade`"
        ]
        assert schema_state() is SchemaState.BEHIND


def test_a_database_migrated_by_a_newer_version_is_left_alone(own_app: Flask) -> None:
    flask_migrate.upgrade()
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))

    result = create_list(own_app)

    assert result.exit_code == 2
    assert "newer than this version" in result.output
    assert schema_state() is SchemaState.UNKNOWN


def test_asking_a_command_for_help_changes_nothing(own_app: Flask) -> None:
    result = create_list(own_app, "--help")

    assert result.exit_code == 0
    assert "--single-optin" in result.output
    assert schema_state() is SchemaState.EMPTY
