"""The web layer, by audience: public pages, admin pages, JSON API."""

from __future__ import annotations

from flask import Flask
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


def register(app: Flask) -> None:
    """Register every blueprint and the error pages."""
    from newsletter.web import admin, api, public

    app.url_map.converters["int"] = IdConverter  # before the rules that use it
    app.register_blueprint(public.bp)
    app.register_blueprint(admin.bp, url_prefix="/admin")
    app.register_blueprint(api.bp, url_prefix="/api/v1")
