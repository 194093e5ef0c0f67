"""Admin pages behind a login: dashboard, lists, subscribers, statements, issues, outbox.

One ``before_request`` hook for the whole blueprint checks every page, so a new page cannot
forget it: the session must be valid (see ``auth/sessions.py``) and the user's role must
allow what the role table (``auth/permissions.py``) says the page needs; anything the table
does not name needs an admin. Only the pages the table marks public open without a login.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask import Blueprint, current_app, flash, g, jsonify, render_template, request
from flask.blueprints import BlueprintSetupState
from flask_login import current_user

from newsletter.auth import permissions, sessions, throttle
from newsletter.errors import NotFound
from newsletter.extensions import login
from newsletter.mail.outbox import outbox_path
from newsletter.web import audit_trail

bp = Blueprint("admin", __name__)

#: Endpoints polled by scripts: they answer 401/403 in JSON rather than with pages, and
#: polling does not count as using the session (it must not keep an idle session alive).
JSON_ENDPOINTS = frozenset({"admin.issue_progress", "admin.import_progress"})


@bp.record_once
def _set_up(state: BlueprintSetupState) -> None:
    throttle.init_app(state.app)


@bp.before_request
def require_login() -> Any:
    """Check the session and the role for every admin page: strangers go to the login page
    (JSON endpoints get a 401), a role that may not do this gets a 403."""
    # Load the user afresh for every request: where one app context spans several requests
    # (the test client inside an app context), Flask-Login's copy in ``g`` may be stale, and
    # so may Flask-WTF's CSRF token (made from another browser's session).
    g.pop("_login_user", None)
    g.pop("csrf_token", None)
    needed = permissions.admin_permission(request.endpoint, request.method)
    if needed is permissions.PUBLIC:
        return None
    if not current_user.is_authenticated:
        if sessions.has_login():  # it named a user, but it has ended
            sessions.forget()
            flash("Your session has ended. Please log in again.", "info")
        if request.endpoint in JSON_ENDPOINTS:
            return jsonify({"error": {"message": "log in first", "field": None}}), 401
        return login.unauthorized()
    refusal = permissions.refusal(current_user, needed)
    if refusal is not None:
        if request.endpoint in JSON_ENDPOINTS:
            return jsonify({"error": {"message": refusal, "field": None}}), 403
        sentence = refusal[:1].upper() + refusal[1:] + "."
        return render_template("admin/error.html", title="Not allowed", message=sentence), 403
    if request.endpoint not in JSON_ENDPOINTS:
        sessions.touch()
    return None


audit_trail.watch(bp)  # after require_login: every change made here is recorded


@bp.after_request
def no_store(response: Any) -> Any:
    """Admin pages hold subscriber data: keep them out of shared caches (the security headers
    are set for every response in ``web/headers.py``)."""
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.errorhandler(NotFound)
def not_found(error: NotFound) -> tuple[str, int]:
    """A missing issue, statement or message: the admin 404 page, naming what is missing."""
    return render_template("admin/error.html", title="Not found", message=error.message), 404


@bp.app_template_filter("admin_when")
def format_when(value: datetime | date | str | None) -> str:
    """A timestamp as ``2024-05-01 14:03 UTC`` (dates as ``2024-05-01``); blank for None."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        suffix = " UTC" if value.tzinfo is not None else ""
        return value.strftime("%Y-%m-%d %H:%M") + suffix
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def allowed(endpoint: str, method: str = "GET") -> bool:
    """True when the logged-in user may use this admin page (templates hide the rest)."""
    return permissions.may_open(current_user, endpoint, method)


@bp.context_processor
def admin_context() -> dict[str, Any]:
    """What every admin page needs: whether the outbox is in use (for the nav), and
    ``allowed(endpoint, method)`` to show only the links and buttons the user may use."""
    return {"outbox_in_use": outbox_path(current_app.config) is not None, "allowed": allowed}
