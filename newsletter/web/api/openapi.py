"""GET /openapi.json: the OpenAPI 3.1 document, made by flask-smorest from the routes and the
schemas that validate them (nothing here describes a shape by hand).

What this module adds is what a route cannot say about itself: paths relative to the
``/api/v1`` server, an ``operationId`` from each view's name, the bearer scheme and the 401
and 403 every call may answer (``blueprint.require_token``), and the error answers as named
responses.
"""

from __future__ import annotations

from typing import Any

import flask_smorest
from flask import Flask, Response, current_app, jsonify
from flask_smorest.spec.plugins import FlaskPlugin

from newsletter.web.api.blueprint import bp
from newsletter.web.api.schemas import ErrorSchema, StatementZipImportSchema

PREFIX = "/api/v1"
JSON = "application/json"

#: the error answers, by response component name: their status and what they mean
RESPONSES = {
    "BadRequest": "malformed JSON, or a body that is not a JSON object",
    "Unauthorized": "no token, or a token that is not valid (unknown, expired or revoked)",
    "Forbidden": "the token lacks the scope this call needs (read, write or send)",
    "NotFound": "no such resource (or a list, statement or template named in the body)",
    "Conflict": "clashes with what exists (a taken slug, an issue already sending)",
    "PayloadTooLarge": "the body is larger than this call takes",
    "UnsupportedMediaType": "the body is not of a type this call takes",
    "Unprocessable": "a field is missing, mistyped or not acceptable; `field` names it",
    "Unavailable": "the queue is not available; nothing was sent",
    "WebhookUnauthorized": "the provider's credentials (basic auth) are missing or wrong",
    "WebhookRefused": "the provider's signature does not verify, or the request is stale or "
    "a replay",
}

DESCRIPTION = (
    "Lists, subscribers, statements and issues of a newsletter. Every call takes "
    "`Authorization: Bearer TOKEN` (`newsletter tokens create EMAIL`). Errors are "
    '`{"error": {"message": …, "field": …}}`; dates are ISO 8601.'
)


class Api(flask_smorest.Api):
    """flask-smorest's extension, minus its app-wide error handler: the API blueprint
    answers its own errors in its own shape, and the admin and public pages keep theirs."""

    DEFAULT_ERROR_RESPONSE_NAME = None
    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        pass

    def _register_pagination_header(self) -> None:
        pass  # no page-number pagination here: pages are keyset pages (``next``)


class ApiPaths(FlaskPlugin):
    """Paths below the server URL (``/lists``, not ``/api/v1/lists``), an operationId from the
    view's name (``create_list`` → ``createList``) and the 401 and 403 of the token check."""

    def path_helper(self, rule: Any, operations: Any, parameters: Any, **kwargs: Any) -> str:
        path = str(super().path_helper(rule, operations, parameters, **kwargs))
        # Each operation lists its own path parameters, as readers of one operation expect.
        for parameter in parameters:
            name = parameter["name"]
            if name.endswith("_id"):
                parameter.setdefault("description", name.removesuffix("_id") + " id")
        for operation in operations.values():
            operation["parameters"] = [*parameters, *operation.get("parameters", [])]
        parameters.clear()
        return path.removeprefix(PREFIX) or "/"

    def operation_helper(self, path: Any = None, operations: Any = None, **kwargs: Any) -> None:
        name = kwargs["rule"].endpoint.rpartition(".")[2]
        head, *rest = name.split("_")
        for operation in (operations or {}).values():
            operation.setdefault("operationId", head + "".join(word.title() for word in rest))
            responses = operation.setdefault("responses", {})
            if operation.get("security") != []:  # [] : a provider webhook, no bearer token
                responses[401] = "Unauthorized"
                responses[403] = "Forbidden"
            operation["responses"] = dict(sorted(responses.items(), key=lambda i: str(i[0])))


def register(app: Flask) -> None:
    """Mount the API blueprint at /api/v1 and build its document."""
    api = Api(
        app,
        spec_kwargs={
            "title": "newsletter API",
            "version": "1.0.0",
            "openapi_version": "3.1.0",
            "flask_plugin": ApiPaths(),
            "info": {"description": DESCRIPTION},
            "servers": [{"url": PREFIX}],
            "security": [{"bearerAuth": []}],
        },
    )
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    for name, description in RESPONSES.items():
        response: dict[str, Any] = {
            "description": description, "content": {JSON: {"schema": ErrorSchema}},
        }
        if name == "Unauthorized":
            response["headers"] = {
                "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}
            }
        api.spec.components.response(name, response)
    # named in POST /statements' oneOf answer, so it must be a component of its own
    api.spec.components.schema("StatementZipImport", schema=StatementZipImportSchema)
    api.register_blueprint(bp, url_prefix=PREFIX)
    app.extensions["newsletter_api"] = api


@bp.get("/openapi.json")
@bp.response(200, description="the OpenAPI document", content_type=JSON)
def get_openapi() -> Response:
    """This document."""
    api: Api = current_app.extensions["newsletter_api"]
    return jsonify(api.spec.to_dict())
