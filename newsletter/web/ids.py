"""Ids in URLs: numbers a table can hold, and what a larger one becomes."""

from __future__ import annotations

from werkzeug.routing import IntegerConverter

#: The largest id a table holds (INTEGER on PostgreSQL).
MAX_ID = 2**31 - 1
#: What a larger number in a URL becomes to the database: an id no row has (ids start at 1).
NO_ID = 0


class OutOfRangeId(int):
    """A number in a URL too large for any table: ``NO_ID`` to the database (so the lookup
    finds nothing and no driver overflows), and the number asked for wherever it is shown,
    so the "not found" answer names the id the caller sent ("no issue 99999999999"), not 0.
    """

    asked: str

    def __new__(cls, asked: str) -> OutOfRangeId:
        self = super().__new__(cls, NO_ID)
        self.asked = asked
        return self

    def __repr__(self) -> str:
        return self.asked

    __str__ = __repr__


class IdConverter(IntegerConverter):
    """``<int:…>`` for ids: a number no row can hold becomes an :class:`OutOfRangeId`, so the
    view's own lookup answers "not found" in its blueprint's style (JSON in the API) rather
    than the database driver failing with an overflow."""

    def to_python(self, value: str) -> int:
        number = int(super().to_python(value))
        return number if number <= MAX_ID else OutOfRangeId(str(number))
