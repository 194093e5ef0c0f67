"""Admin pages behind a login: dashboard, lists, subscribers, statements, issues, outbox.

Every page needs a logged-in user except the login and first-admin setup pages; the check is
one ``before_request`` hook for the whole blueprint, so a new page cannot forget it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask import Blueprint, current_app, g, jsonify, render_template, request
from flask_login import current_user

from newsletter.errors import NotFound
from newsletter.extensions import login
from newsletter.mail.outbox import outbox_path
from newsletter.web import audit_trail

bp = Blueprint("admin", __name__)

#: Endpoints reachable without logging in.
PUBLIC_ENDPOINTS = frozenset({"admin.login", "admin.login_code", "admin.setup"})
#: Endpoints polled by scripts: they answer 401 rather than redirect to the login page.
JSON_ENDPOINTS = frozenset({"admin.issue_progress"})


@bp.before_request
def require_login() -> Any:
    """Send anyone not logged in to the login page (JSON endpoints get a plain 401)."""
    # Load the user afresh for every request: where one app context spans several requests
    # (the test client inside an app context), Flask-Login's copy in ``g`` may be stale.
    g.pop("_login_user", None)
    if request.endpoint in PUBLIC_ENDPOINTS or current_user.is_authenticated:
        return None
    if request.endpoint in JSON_ENDPOINTS:
        return jsonify({"error": {"message": "log in first", "field": None}}), 401
    return login.unauthorized()


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


@bp.context_processor
def admin_context() -> dict[str, Any]:
    """What every admin page needs: whether the outbox is in use (for the nav)."""
    return {"outbox_in_use": outbox_path(current_app.config) is not None}
