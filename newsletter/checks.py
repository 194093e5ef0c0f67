"""Start-up checks: reach the database and the broker once, and say which one fails and why."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from sqlalchemy import text

from newsletter.errors import ConfigError
from newsletter.extensions import db
from newsletter.schema import SchemaState, schema_advice, schema_state


def check_services(app: Flask, *, need_schema: bool = False) -> None:
    """Connect to the configured database and broker.

    :param need_schema: also require every migration to have been applied.
    :raises ConfigError: naming the setting whose service cannot be reached.
    """
    _check_database(need_schema)
    _check_broker(app.extensions["dramatiq"], app.config.get("BROKER_URL"))


def _check_database(need_schema: bool) -> None:
    try:
        with db.engine.connect() as connection:
            connection.execute(text("select 1"))
    except Exception as error:  # noqa: BLE001 - any failure to connect is the setting's fault
        raise ConfigError(
            "NEWSLETTER_DATABASE_URL", f"cannot connect: {_first_line(error)}"
        ) from None
    if need_schema:
        state = schema_state()
        if state not in (SchemaState.CURRENT, SchemaState.UNVERSIONED):
            raise ConfigError("NEWSLETTER_DATABASE_URL", schema_advice(state))


def _check_broker(broker: Any, url: str | None) -> None:
    try:
        if hasattr(broker, "client"):  # Redis
            broker.client.ping()
        elif hasattr(broker, "connection"):  # RabbitMQ: opening the connection is the test
            broker.connection  # noqa: B018
    except Exception as error:  # noqa: BLE001
        where = urlsplit(url or "").hostname, urlsplit(url or "").port
        raise ConfigError(
            "NEWSLETTER_BROKER_URL",
            f"cannot connect to {where[0]}:{where[1]}: {_first_line(error)}",
        ) from None


def _first_line(error: Exception) -> str:
    message = str(error).strip().splitlines()
    # SQLAlchemy wraps the driver's error; its first line is the one that explains.
    return (message[0] if message else error.__class__.__name__).strip()
