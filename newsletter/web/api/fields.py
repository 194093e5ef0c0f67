"""Marshmallow fields as strict as JSON: a boolean is ``true``/``false``, an id is a whole
number a table can hold, a string is text PostgreSQL can store.

Marshmallow's own fields are lenient by design (``"yes"`` is true, ``true`` is 1); an API
that names the field at fault should refuse those instead of guessing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from marshmallow import ValidationError, fields
from marshmallow.validate import Length, Range

from newsletter.audience.subscriptions import visible_attributes
from newsletter.web.ids import MAX_ID


class Text(fields.String):
    """A string without NUL characters or lone surrogates (PostgreSQL stores neither).

    :param strip: remove surrounding whitespace.
    :param not_blank: refuse an empty (or, with ``strip``, all-blank) string.
    :param allow_nul: let NUL through, for a look-up whose service finds nothing by it.
    """

    def __init__(
        self, *, strip: bool = False, not_blank: bool = False, allow_nul: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.strip = strip
        self.not_blank = not_blank
        self.allow_nul = allow_nul
        if not_blank:
            self.validators.insert(0, Length(min=1))

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = str(super()._deserialize(value, attr, data, **kwargs))
        if "\x00" in text and not self.allow_nul:
            raise ValidationError("must not contain NUL characters")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("must be valid Unicode text") from None
        if self.strip:
            text = text.strip()
        if self.not_blank and not text.strip():
            raise ValidationError("must not be empty")
        return text


class Flag(fields.Boolean):
    """``true`` or ``false``, nothing that merely looks like one."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("must be true or false")
        return value


#: the ids a table can hold
ID_RANGE = Range(min=1, max=MAX_ID, error=f"must be an id between 1 and {MAX_ID}")


class Id(fields.Integer):
    """A row id in a JSON body: a whole number (not ``true``, not ``1.0``) up to ``MAX_ID``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)
        self.validators.insert(0, ID_RANGE)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise ValidationError("must be an integer id")
        return int(super()._deserialize(value, attr, data, **kwargs))



class QueryInt(fields.Integer):
    """A whole number in a query string (``?limit=50``)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, str) and not value.strip().lstrip("+-").isdigit():
            raise ValidationError("must be an integer")
        return int(super()._deserialize(value, attr, data, **kwargs))


class Choice(Text):
    """One of a few words, in any case (``?status=Sent``), given back in lower case."""

    def __init__(self, choices: list[str], **kwargs: Any) -> None:
        kwargs.setdefault("metadata", {})["enum"] = choices
        super().__init__(strip=True, **kwargs)
        self.choices = choices

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        word = super()._deserialize(value, attr, data, **kwargs).lower()
        if word not in self.choices:
            raise ValidationError(f"must be one of: {', '.join(self.choices)}")
        return word


class UniqueList(fields.List):
    """A list of at most ``max_items`` (counted before any item is read), repeats dropped
    (the first one kept)."""

    def __init__(self, inner: fields.Field, *, max_items: int, min_items: int = 1,
                 **kwargs: Any) -> None:
        super().__init__(inner, **kwargs)
        self.validators.insert(0, Length(min=min_items, max=max_items))
        self.max_items = max_items

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if isinstance(value, list) and len(value) > self.max_items:
            raise ValidationError(f"must have at most {self.max_items} items")
        items = super()._deserialize(value, attr, data, **kwargs)
        return list(dict.fromkeys(items))


class SortedList(fields.List):
    """A list given out in the order of ``key`` (subscriptions by list slug)."""

    def __init__(self, inner: fields.Field, *, key: Callable[[Any], Any], **kwargs: Any) -> None:
        super().__init__(inner, **kwargs)
        self.key = key

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        ordered = None if value is None else sorted(value, key=self.key)
        return super()._serialize(ordered, attr, obj, **kwargs)


class TemplateKey(fields.Field):
    """A template by name, or by id (as the issues API takes it)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("metadata", {})["oneOf"] = [
            {"type": "string", "minLength": 1, "maxLength": 100},
            {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        ]
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | int:
        if isinstance(value, int) and not isinstance(value, bool):
            return int(ID_RANGE(value))
        if isinstance(value, str):
            return Text(strip=True, not_blank=True)._deserialize(value, attr, data, **kwargs)
        raise ValidationError("must be a template name (or id)")


class JsonObject(fields.Dict):
    """A JSON object in, a JSON-safe object out (YAML front matter may hold dates)."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return json_safe(value if isinstance(value, Mapping) else {})


class AttributesObject(JsonObject):
    """A subscriber's attributes: out without the tool's own keys (``visible_attributes``)."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        shown = visible_attributes(dict(value) if isinstance(value, Mapping) else {})
        return super()._serialize(shown, attr, obj, **kwargs)


def json_safe(value: Any) -> Any:
    """JSON types only: YAML may hold dates (and other scalars JSON lacks)."""
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_safe(item) for item in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
