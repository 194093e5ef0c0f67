"""Ids in URLs: numbers a table can hold, and what a larger one becomes."""

from __future__ import annotations

from werkzeug.routing import IntegerConverter

#: The largest id a table holds (INTEGER on PostgreSQL).
MAX_ID = 2**31 - 1
#: What a larger number in a URL becomes: an id no row has (ids start at 1).
NO_ID = 0


class IdConverter(IntegerConverter):
    """``<int:…>`` for ids: a number no row can hold becomes ``NO_ID``, so the view's own
    lookup answers "not found" in its blueprint's style (JSON in the API) rather than the
    database driver failing with an overflow."""

    def to_python(self, value: str) -> int:
        number = int(super().to_python(value))
        return number if number <= MAX_ID else NO_ID
