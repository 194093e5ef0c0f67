"""The API's blueprint: bearer tokens, a cap on every body, one error shape.

Every answer that is not a success is ``{"error": {"message": …, "field": …}}`` with a 4xx
(or 5xx) status, including unknown routes, ids the URL converter refuses and wrong methods
under the prefix. The routes live in one module per resource; their schemas (``schemas.py``)
validate them and make the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import Response, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from flask_smorest import Blueprint
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as HTTPNotFound
from werkzeug.routing import RequestRedirect

from newsletter.auth import scopes
from newsletter.auth.permissions import api_refusal
from newsletter.auth.tokens import token_for
from newsletter.errors import (
    Conflict,
    InvalidToken,
    NewsletterError,
    NotFound,
    TemplateError,
    ValidationError,
)
from newsletter.extensions import csrf, db
from newsletter.web import audit_trail

bp = Blueprint("api", __name__, description="Lists, subscribers, statements and issues")

# Bearer tokens, no cookies: a cross-site request cannot carry the credential, so no CSRF.
csrf.exempt(bp)

#: what a NotFound raised while reading a request body means in terms of the body's fields
_BODY_FIELD_FOR_KIND = {
    "list": "lists", "statement": "statements", "template": "template", "segment": "segments",
}

_ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class ApiError(Exception):
    """An error the web layer itself decides (auth, malformed bodies), with its status."""

    def __init__(self, status: int, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def error_response(
    status: int, message: str, field: str | None = None, *, position: int | None = None
) -> Response:
    """The one error shape of the API (``position``: a segment query's column at fault)."""
    detail: dict[str, Any] = {"message": message, "field": field}
    if position is not None:
        detail["position"] = position
    response = jsonify({"error": detail})
    response.status_code = status
    return response


# --- authentication -----------------------------------------------------------------------


@bp.before_request
def require_token() -> Response | None:
    """Every call needs ``Authorization: Bearer TOKEN`` naming an active user's live token,
    with the scope the call needs (``auth/scopes.py``) and an owner whose role allows it
    (``auth/permissions.py``): else a 401, or a 403 for the scope or the role."""

    if authenticates_itself(request.endpoint):
        return None  # a provider webhook: the provider signs instead (bounce_hooks.py)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return _unauthorized("an API token is required: Authorization: Bearer TOKEN", None)
    row = token_for(token)  # None also when expired, revoked or its owner deactivated
    if row is None:
        return _unauthorized("the API token is not valid", "invalid_token")
    g.api_user = row.user
    g.api_token = row  # its name goes into the consent record of what it subscribes
    rule = request.url_rule if request.endpoint not in CATCH_ALL_ENDPOINTS else None
    missing = scopes.missing_scope(row.scopes, rule.rule if rule else None, request.method)
    if missing:
        return error_response(403, f"this token lacks the {missing} scope", "Authorization")
    # A route the role table does not name needs an admin.
    refusal = api_refusal(row.user, request.url_rule.rule if request.url_rule else None,
                          request.method)
    return error_response(403, refusal) if refusal else None


def authenticates_itself(endpoint: str | None) -> bool:
    """Whether the view of ``endpoint`` checks its caller itself (a provider's signature)
    instead of a bearer token: views marked ``view.authenticates_itself = True``."""
    view = current_app.view_functions.get(endpoint or "")
    return bool(getattr(view, "authenticates_itself", False))


audit_trail.watch(bp)  # after require_token: every change made here is recorded


def _unauthorized(message: str, rfc6750_error: str | None) -> Response:
    response = error_response(401, message, "Authorization")
    challenge = 'Bearer realm="newsletter"'
    if rfc6750_error:  # RFC 6750 §3: name the error only when a token was presented
        challenge += f', error="{rfc6750_error}"'
    response.headers["WWW-Authenticate"] = challenge
    return response


# --- body size ----------------------------------------------------------------------------


@bp.before_request
def limit_body() -> None:
    """Cap the request body before anything reads it: the view's own cap (``edge.body``),
    else ``API_MAX_CONTENT_LENGTH``, never above ``MAX_CONTENT_LENGTH``; a larger
    ``Content-Length`` is refused at once."""

    view = current_app.view_functions.get(request.endpoint or "")
    caps = [
        getattr(view, "max_body_bytes", None) or current_app.config["API_MAX_CONTENT_LENGTH"],
        current_app.config.get("MAX_CONTENT_LENGTH"),  # the app-wide ceiling
    ]
    cap = min(int(value) for value in caps if value)
    request.max_content_length = cap  # also stops a chunked body without a length
    if request.content_length is not None and request.content_length > cap:
        raise ApiError(413, _HTTP_MESSAGES[413])


# --- OPTIONS ------------------------------------------------------------------------------


@bp.before_request
def answer_options() -> Response | None:
    """``OPTIONS`` on a route of the API: 204 No Content with ``Allow``, no body (Flask's
    own answer is a 200 ``text/html`` with an empty body).

    After the token check, like every call: the methods of a path are for the API's own
    callers. Never a CORS preflight answer either (no ``Access-Control-Allow-*``): the API
    is for programs holding a token, not for other sites' pages in a browser. An unknown
    path falls through to the catch-all, a JSON 404.
    """
    rule = request.url_rule
    if request.method != "OPTIONS" or rule is None or request.endpoint in CATCH_ALL_ENDPOINTS:
        return None
    response = Response(status=204)
    del response.headers["Content-Type"]  # no body, so no type (Werkzeug's default is html)
    response.headers["Allow"] = ", ".join(sorted(_allowed_methods()))
    return response


# --- errors -------------------------------------------------------------------------------


@bp.errorhandler(ApiError)
def _api_error(error: ApiError) -> Response:
    return error_response(error.status, error.message, error.field)


@bp.errorhandler(NewsletterError)
def _domain_error(error: NewsletterError) -> Response:
    # A service may fail half-way through its transaction; leave the session clean.
    db.session.rollback()
    status, field = _status_for(error)
    return error_response(status, error.message, field, position=getattr(error, "position", None))


def _status_for(error: NewsletterError) -> tuple[int, str | None]:
    """Map a domain error to an HTTP status and the request field at fault."""
    if isinstance(error, NotFound):
        field = error.field
        if field is None and request.method == "POST":
            field = _BODY_FIELD_FOR_KIND.get(error.kind)
        return 404, field
    if isinstance(error, Conflict):  # also AlreadySubscribed and IssueStateError
        return 409, error.field
    if isinstance(error, ValidationError | TemplateError):  # InvalidEmail, InvalidStatement
        return 422, error.field
    if isinstance(error, InvalidToken):
        return 400, error.field
    current_app.logger.error("unexpected domain error in the API: %r", error)
    return 500, error.field


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> ResponseReturnValue:
    if isinstance(error, RequestRedirect):  # a missing trailing slash: let it redirect
        return error.get_response()
    status = error.code or 500
    message = _HTTP_MESSAGES.get(status) or (error.description or error.name)
    response = error_response(status, message)
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        response.headers["Allow"] = ", ".join(sorted(error.valid_methods))
    return response


_HTTP_MESSAGES = {
    400: "the request could not be understood",
    404: "no such resource",
    405: "this method is not allowed here",
    413: "the request body is too large",
    500: "internal error",
}


# --- unknown routes -----------------------------------------------------------------------
# Routing errors happen before Flask knows the blueprint, so blueprint error handlers never
# see them; a catch-all rule keeps unknown paths, ids the converter refuses
# (/issues/x/retry) and wrong methods under /api/v1 in JSON without touching the app-wide
# error pages. Added with Flask's own add_url_rule: they are not part of the document.


def unknown_route(path: str = "") -> Response:
    """Answer 405 when another API route has this path, else 404."""
    allowed = _allowed_methods()
    if allowed:
        raise MethodNotAllowed(valid_methods=allowed)
    raise HTTPNotFound()


FlaskBlueprint.add_url_rule(
    bp, "/", "unknown_root", unknown_route, methods=_ANY_METHOD, strict_slashes=False
)
FlaskBlueprint.add_url_rule(bp, "/<path:path>", "unknown", unknown_route, methods=_ANY_METHOD)


#: (also PATCH /lists/<not an id>, in lists.py: an id the converter refuses)
CATCH_ALL_ENDPOINTS = frozenset({"api.unknown", "api.unknown_root", "api.patch_list_not_an_id"})


def _allowed_methods() -> list[str]:
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = []
    for method in _ANY_METHOD:
        try:
            endpoint, _ = adapter.match(request.path, method=method)
        except HTTPException:
            continue
        if endpoint not in CATCH_ALL_ENDPOINTS:
            allowed.append(method)
    return allowed


def api_user() -> Any:
    """The user whose token authenticated this request."""
    return g.api_user
