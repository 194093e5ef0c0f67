"""Reading requests at the edge, through the schemas, with errors in the API's shape.

``@body(Schema, max_bytes=…)`` reads a JSON object body with the schema (after the body cap,
see ``blueprint.limit_body``); ``@query(Schema)`` the query string; ``@errors(404, …)``
documents the error answers a call may give besides those. Each passes the parsed dict to
the view as its first argument, and each is also what the OpenAPI document says.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TypeVar

from flask import request
from marshmallow import Schema
from marshmallow import ValidationError as SchemaError
from webargs.flaskparser import FlaskParser

from newsletter.web.api.blueprint import ApiError, bp

F = TypeVar("F", bound=Callable[..., Any])

KIB = 1024

#: the response components (``openapi.RESPONSES``) of the error statuses
ERROR_RESPONSES = {
    400: "BadRequest",
    404: "NotFound",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "Unprocessable",
    503: "Unavailable",
}


class Parser(FlaskParser):
    """webargs' Flask parser with our rules: a JSON body is an object (else 400, or 415 when
    it is not JSON at all), ``null`` counts as absent, and a field that does not fit is a
    422 naming it."""

    DEFAULT_VALIDATION_STATUS = 422

    def load_json(self, req: Any, schema: Schema) -> Any:
        return json_object_body()

    def handle_error(
        self, error: SchemaError, req: Any, schema: Schema, *, error_status_code: int | None,
        error_headers: Mapping[str, str] | None,
    ) -> NoReturn:
        field, message = first_error(error.messages)
        if field is None:
            raise ApiError(422, message)
        raise ApiError(422, f"{field}: {message}", field=field)


parser = Parser()
bp.ARGUMENTS_PARSER = parser


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def json_object_body() -> dict[str, Any]:
    """The request's body as a JSON object, without its ``null`` fields.

    :raises ApiError: 415 when the body is not JSON; 400 when it is malformed, nested too
        deeply or not an object; 413 when it is larger than the call's cap.
    """
    if not request.is_json:
        raise ApiError(415, "expected a JSON body (Content-Type: application/json)")
    raw = request.get_data(cache=True)  # raises 413 past request.max_content_length
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise ApiError(400, "the body is nested too deeply") from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, a number too long to read
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return {key: value for key, value in data.items() if value is not None}


def first_error(messages: Any) -> tuple[str | None, str]:
    """The first field at fault in marshmallow's error messages, and what is wrong with it.

    Messages nest by location (``{"json": {"lists": {0: ["Not a valid string."]}}}``);
    the field is the top-level name inside the location.
    """
    if isinstance(messages, Mapping) and len(messages) == 1:
        location, inner = next(iter(messages.items()))
        if location in ("json", "query", "querystring") and isinstance(inner, Mapping):
            messages = inner
    if isinstance(messages, Mapping) and messages:
        name, detail = next(iter(messages.items()))
        field = None if name == "_schema" else str(name)
        return field, _first_text(detail)
    return None, _first_text(messages)


def _first_text(detail: Any) -> str:
    while isinstance(detail, Mapping | list) and detail:
        detail = next(iter(detail.values())) if isinstance(detail, Mapping) else detail[0]
    text = str(detail or "is not acceptable")
    return text[:1].lower() + text[1:].rstrip(".")


def body(schema: type[Schema], *, max_bytes: int, description: str | None = None) -> Callable[
    [F], F
]:
    """Read the JSON body with ``schema`` (at most ``max_bytes``); document it and its errors."""

    def decorate(view: F) -> F:
        wrapped = bp.arguments(schema, location="json", description=description)(view)
        wrapped = errors(400, 413, 415, 422)(wrapped)
        wrapped.max_body_bytes = max_bytes  # see limit_body
        return wrapped

    return decorate


def query(schema: type[Schema]) -> Callable[[F], F]:
    """Read the query string with ``schema``; document its parameters and the 422."""

    def decorate(view: F) -> F:
        wrapped = bp.arguments(schema, location="query")(view)
        return errors(422)(wrapped)

    return decorate


def read_body(schema: type[Schema]) -> dict[str, Any]:
    """Read the JSON body with ``schema`` inside a view that takes other bodies too."""
    return dict(parser.parse(schema(), location="json"))


def errors(*statuses: int) -> Callable[[F], F]:
    """Document the error answers (in the error shape) a call may give."""

    def decorate(view: F) -> F:
        for status in statuses:
            view = bp.alt_response(status, response=ERROR_RESPONSES[status])(view)
        return view

    return decorate
