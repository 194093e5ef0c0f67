"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL.

Each test starts from an empty database of its own (``empty_database_url``), so the shared
test database other tests use is never touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import flask_migrate
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask

from newsletter import create_app
from newsletter.audience.models import Subscriber
from newsletter.auth.models import Role, User
from newsletter.extensions import db

# Written by hand in migrations/versions/0001_initial_schema.py: autogenerate cannot see them.
EXPRESSION_INDEXES = {"uq_subscribers_email_lower", "uq_users_email_lower"}

# SQLite cannot reflect expression indexes, so compare_metadata skips them there (with these
# warnings); index_names() and the duplicate-address test check them instead.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index"),
    pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based"),
]


@pytest.fixture
def migrating_app(
    app_config: dict[str, Any], empty_database_url: str, keep_logging: None
) -> Iterator[Flask]:
    """An app on the empty database, inside its app context; no table exists yet."""
    app = create_app({**app_config, "DATABASE_URL": empty_database_url})
    with app.app_context():
        assert table_names() == set(), "the database should start empty"
        yield app
        db.session.remove()
        db.engine.dispose()


def table_names() -> set[str]:
    return set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}


def schema_differences() -> list[Any]:
    """What autogenerate would change to make the database match the models (empty: agree)."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, db.metadata))


def index_names() -> set[str]:
    """Every index in the database, read from the catalogue (reflection skips expressions)."""
    if db.engine.dialect.name == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'index'"
    else:
        query = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
    with db.engine.connect() as connection:
        return {row[0] for row in connection.execute(sa.text(query))}


def test_upgrade_builds_the_schema_the_models_describe(migrating_app: Flask) -> None:
    flask_migrate.upgrade()

    assert table_names() == set(db.metadata.tables)
    assert schema_differences() == []
    assert EXPRESSION_INDEXES <= index_names()


def test_addresses_are_unique_whatever_their_case(migrating_app: Flask) -> None:
    flask_migrate.upgrade()

    db.session.add(Subscriber(email="ada@example.com"))
    db.session.commit()
    db.session.add(Subscriber(email="Ada@Example.COM"))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()
    db.session.rollback()

    db.session.add(User(email="editor@example.org", password_hash="x", role=Role.EDITOR))
    db.session.commit()
    db.session.add(User(email="EDITOR@example.org", password_hash="x", role=Role.EDITOR))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_downgrade_to_base_removes_everything_and_upgrade_rebuilds_it(
    migrating_app: Flask,
) -> None:
    flask_migrate.upgrade()
    flask_migrate.downgrade(revision="base")

    assert table_names() == set()
    assert not EXPRESSION_INDEXES & index_names()

    flask_migrate.upgrade()

    assert table_names() == set(db.metadata.tables)
    assert schema_differences() == []
    assert EXPRESSION_INDEXES <= index_names()


def test_the_viewer_role_keeps_existing_users_their_tokens_and_case_free_addresses(
    migrating_app: Flask,
) -> None:
    flask_migrate.upgrade(revision="0004")
    with db.engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO users (email, password_hash, role, active, created_at, timezone)"
            " VALUES ('ed@example.org', 'x', 'editor', true, CURRENT_TIMESTAMP, 'UTC')"
        ))
        user_id = connection.execute(sa.text("SELECT id FROM users")).scalar_one()
        connection.execute(sa.text(
            "INSERT INTO api_tokens (user_id, token_hash, prefix, created_at)"
            " VALUES (:user_id, 'h', 'nl_abc', CURRENT_TIMESTAMP)"
        ), {"user_id": user_id})

    flask_migrate.upgrade()

    user = db.session.get(User, user_id)
    assert user is not None and user.role is Role.EDITOR
    [token] = user.tokens
    assert token.scopes == "read write send"  # made before scopes: every scope
    db.session.add(User(email="viewer@example.org", password_hash="x", role=Role.VIEWER))
    db.session.commit()
    db.session.add(User(email="ED@example.org", password_hash="x", role=Role.VIEWER))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()
    db.session.rollback()
    with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as connection:
        connection.execute(sa.text("UPDATE users SET role = 'owner'"))
