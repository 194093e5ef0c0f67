"""Every extension singleton, created unbound and bound to the app in ``init_extensions``."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

from newsletter import i18n

# Stable constraint names, so Alembic migrations name the same thing on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


#: ``app.extensions[FACTORY_KEY]`` is the factory that made the app: commands that start
#: processes of their own (``newsletter worker``, the bench) build each one's app with it,
#: without importing the package that imports them
FACTORY_KEY = "newsletter.create_app"

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[])


def init_extensions(app: Flask) -> None:
    """Bind every extension to ``app``."""
    db.init_app(app)
    migrate.init_app(app, db, directory=str(app.config.get("MIGRATIONS_DIR", _migrations_dir())))
    login.init_app(app)
    login.login_view = "admin.login"
    login.login_message_category = "info"
    csrf.init_app(app)
    # Flask-Limiter keeps the first app's RATELIMIT_KEY_PREFIX for every later one; each app
    # (several in one process: tests, benches) counts under its own REDIS_PREFIX instead.
    limiter._key_prefix = ""  # noqa: SLF001 - the one place the extension keeps it
    limiter.init_app(app)
    i18n.init_app(app)  # Flask-Babel: public pages and subscribers' mail


def _migrations_dir() -> str:
    return str(Path(__file__).resolve().parent.parent / "migrations")


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """WAL lets the web and the worker threads read while one writes; FKs are off by default.

    ``synchronous=NORMAL`` is SQLite's advice for WAL: a commit survives the process being
    killed, and only an OS crash or power cut may lose the last ones; FULL would fsync on
    every commit, and a send commits once per message.
    """
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
