"""Shared model helpers: timestamps and enum columns stored as readable strings."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, Enum
from sqlalchemy.types import TypeDecorator

from newsletter.errors import NotFound
from newsletter.extensions import db


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC that always comes back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def enum_column(enum_class: type[enum.Enum]) -> Enum:
    """An enum stored by value as a VARCHAR with a CHECK, the same on SQLite and PostgreSQL."""
    return Enum(
        enum_class,
        name=enum_class.__name__.lower(),
        native_enum=False,
        create_constraint=True,
        length=20,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


Row = TypeVar("Row")


def get_or_raise(model: type[Row], key: int, kind: str, *, field: str | None = None) -> Row:
    """The row of ``model`` with primary key ``key``.

    :raises NotFound: no such row (``kind`` names it to the person asking; ``field`` names
        the input that held the key, when there is one).
    """

    row = db.session.get(model, key)
    if row is None:
        error = NotFound(kind, key)
        if field is not None:
            error.field = field
        raise error
    return row

