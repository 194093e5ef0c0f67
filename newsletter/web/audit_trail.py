"""Recording every change made through the admin pages and the API, in one hook.

:func:`watch` puts a ``before_request`` and an ``after_request`` hook on a blueprint: every
request that may change something (not GET, HEAD or OPTIONS) and succeeded (2xx or 3xx, and
no error flashed: admin forms refuse by redirecting with an error message) becomes one audit
event. Nothing from the request body is kept but its field names, and nothing from the URL
but the ids and slugs of the route's arguments, so no password, token or subscriber's data
lands in the log.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, g, request
from flask import message_flashed as _message_flashed
from flask_login import current_user
from werkzeug.wrappers import Response

from newsletter import audit
from newsletter.web.headers import is_secret

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_MAX_FIELDS, _MAX_NAME = 20, 50


def watch(bp: Blueprint) -> None:
    """Record every successful change made through ``bp``'s routes.

    Call it once, after the blueprint's own ``before_request`` hooks (the user is known
    by then).
    """
    bp.before_request(_start)
    bp.after_request(_record)


def _start() -> None:
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "audited", True) is False:
        # Marked by the view (provider webhooks): no person acts there, and each provider
        # request would add an anonymous row; the bounce events are the record.
        g.audit_started = False
        return
    # g outlives one request where an app context spans several (tests): start afresh.
    g.audit_started = True  # an earlier hook that answers (the login redirect) skips this
    g.audit_refused = False
    g.audit_user = _user()  # who was logged in before the request (logout ends that)


def _note_refusal(sender: Flask, message: str, category: str, **extra: Any) -> None:
    if category == "error":
        g.audit_refused = True


# Flask sends this signal for every flash(); a refused admin action flashes an error.
_message_flashed.connect(_note_refusal)


def _record(response: Response) -> Response:
    if not g.pop("audit_started", False) or g.pop("audit_refused", False):
        return response
    if request.method in SAFE_METHODS or response.status_code >= 400:
        return response
    user = _user() or g.get("audit_user")
    audit.record(
        str(request.endpoint),
        actor=user.email if user is not None else "anonymous",
        user_id=user.id if user is not None else None,
        target=_target(request.view_args or {}),
        detail=_detail(response),
        ip=request.remote_addr,
    )
    return response


def _user() -> Any:
    """The API token's user (on an API call), else the logged-in user, else None."""
    # Only on the API: where one app context spans requests (tests), an earlier call's
    # token user must not become the actor of an admin page's change.
    api_user = g.get("api_user") if request.blueprint == "api" else None
    if api_user is not None:
        return api_user
    return current_user._get_current_object() if current_user.is_authenticated else None


def _target(view_args: dict[str, Any]) -> str:
    """``issue_id=12 slug=news``: the route's ids and names, secrets (by their argument's
    name, :func:`~newsletter.web.headers.is_secret`) left out."""
    return " ".join(
        f"{name}={value}"
        for name, value in sorted(view_args.items())
        if isinstance(value, int) or not is_secret(name)
    )


def _detail(response: Response) -> dict[str, Any]:
    detail: dict[str, Any] = {"method": request.method, "status": response.status_code}
    fields = _field_names()
    if fields:
        detail["fields"] = fields
    created = _created_id(response)
    if created is not None:
        detail["id"] = created
    if response.location:  # where a form sent the browser: the new issue's page, say
        detail["location"] = urlsplit(response.location).path  # no query: it may hold an address
    return detail


def _field_names() -> list[str]:
    """The names (never the values) of the fields sent, form or JSON."""
    if request.is_json:
        body = request.get_json(silent=True)
        names = list(body) if isinstance(body, dict) else []
    else:
        names = [*request.form.keys(), *request.files.keys()]
    kept = sorted({str(name)[:_MAX_NAME] for name in names if name != "csrf_token"})
    return kept[:_MAX_FIELDS]


def _created_id(response: Response) -> int | None:
    """The ``id`` of what an API call made or changed, from its JSON answer."""
    if not response.is_json or response.is_streamed:
        return None
    body = response.get_json(silent=True)
    value = body.get("id") if isinstance(body, dict) else None
    return value if isinstance(value, int) else None
