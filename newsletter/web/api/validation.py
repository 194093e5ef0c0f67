"""Reading request bodies and query strings at the edge: types and required fields.

Services check meaning (a taken slug, an empty subject); this module checks shape, so that a
wrong type never reaches them and every error names the field at fault.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import request

from newsletter.errors import ValidationError
from newsletter.web.api.blueprint import ApiError
from newsletter.web.ids import MAX_ID


def json_object(allowed: Iterable[str]) -> Body:
    """The request's JSON object body, refusing fields outside ``allowed``.

    :raises ApiError: 415 when the body is not JSON, 400 when it is malformed or not an object.
    :raises ValidationError: an unknown field (usually a typo the client wants to hear about).
    """
    if not request.is_json:
        raise ApiError(415, "expected a JSON body (Content-Type: application/json)")
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "the body is not valid JSON")
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    allowed_set = set(allowed)
    for name in data:
        if name not in allowed_set:
            raise ValidationError(f"unknown field {name!r}", field=str(name))
    return Body(data)


class Body:
    """Typed access to the fields of a JSON object, with errors that name the field."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def _get(self, name: str, required: bool) -> Any:
        if name not in self.data or self.data[name] is None:
            if required:
                raise ValidationError(f"{name} is required", field=name)
            return None
        return self.data[name]

    def string(self, name: str, *, required: bool = False, default: str = "") -> str:
        """A string field; ``default`` when absent or null."""
        value = self._get(name, required)
        if value is None:
            return default
        if not isinstance(value, str):
            raise ValidationError(f"{name} must be a string", field=name)
        if required and not value.strip():
            raise ValidationError(f"{name} must not be empty", field=name)
        return value

    def boolean(self, name: str, *, default: bool) -> bool:
        """A true/false field (not 0/1, not "yes")."""
        value = self._get(name, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ValidationError(f"{name} must be true or false", field=name)
        return value

    def integer(self, name: str, *, required: bool = False) -> int | None:
        """An integer id field; None when absent or null and not required."""
        value = self._get(name, required)
        if value is None:
            return None
        if not _is_int(value):
            raise ValidationError(f"{name} must be an integer", field=name)
        return int(value)

    def choice(self, name: str, choices: Iterable[str], *, default: str) -> str:
        """A string field limited to ``choices``."""
        options = list(choices)
        value = self.string(name, default=default)
        if value not in options:
            raise ValidationError(f"{name} must be one of: {', '.join(options)}", field=name)
        return value

    def string_list(self, name: str, *, required: bool = False) -> list[str]:
        """A list of non-empty strings (slugs)."""
        values = self._list(name, required)
        for value in values:
            if not isinstance(value, str) or not value.strip():
                raise ValidationError(f"{name} must be a list of non-empty strings", field=name)
        return [value.strip() for value in values]

    def integer_list(self, name: str, *, required: bool = False) -> list[int]:
        """A list of integer ids."""
        values = self._list(name, required)
        if not all(_is_int(value) for value in values):
            raise ValidationError(f"{name} must be a list of integer ids", field=name)
        return [int(value) for value in values]

    def _list(self, name: str, required: bool) -> list[Any]:
        value = self._get(name, required)
        if value is None:
            return []
        if not isinstance(value, list):
            raise ValidationError(f"{name} must be a list", field=name)
        if required and not value:
            raise ValidationError(f"{name} must not be empty", field=name)
        return value


def _is_int(value: Any) -> bool:
    # bool is an int subclass in Python, but `true` is not an id; nor is what no row can hold.
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_ID


def query_int(name: str, *, default: int, minimum: int, maximum: int | None = None) -> int:
    """An integer query-string parameter within bounds.

    :raises ValidationError: not an integer, or out of bounds (naming the parameter).
    """
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(f"{name} must be an integer", field=name) from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ValidationError(f"{name} must be {bounds}", field=name)
    return value
