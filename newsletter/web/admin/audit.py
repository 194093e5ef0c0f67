"""The audit log page: who changed what and when, searchable, for admins only."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import abort, render_template, request
from flask_login import current_user

from newsletter import audit
from newsletter.auth.models import Role
from newsletter.web.admin.blueprint import bp
from newsletter.web.ids import MAX_ID


@bp.get("/audit")
def audit_log() -> tuple[str, int] | str:
    """Audit events, newest first, filtered by actor, action and a date range."""
    # The log shows every user's doings: admins only (until the role table covers it).
    if current_user.role is not Role.ADMIN:
        abort(403)
    args = {name: request.args.get(name, "").strip()[:200] for name in
            ("actor", "action", "since", "until")}
    errors: list[str] = []
    since = _date(args["since"], "From", errors)
    until = _date(args["until"], "To", errors)
    if since and until and since > until:
        errors.append("The “From” date is after the “To” date.")
    before = _id(request.args.get("before", ""))
    page = None
    if not errors:
        wanted = audit.AuditFilter(
            actor=args["actor"], action=args["action"], since=since, until=until
        )
        page = audit.search(wanted, before=before)
    html = render_template(
        "admin/audit.html",
        args=args,
        filters={name: value for name, value in args.items() if value},
        actions=audit.known_actions(),
        page=page,
        before=before,
        errors=errors,
        describe=describe,
    )
    return (html, 422) if errors else html


def describe(detail: dict[str, Any] | None) -> str:
    """An event's detail on one line: ``method: POST; status: 302; fields: name, slug``."""
    parts = []
    for key, value in (detail or {}).items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        parts.append(f"{key}: {shown}")
    return "; ".join(parts)


def _date(text: str, label: str, errors: list[str]) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors.append(f"“{label}” must be a date like 2024-05-01.")
        return None


def _id(text: str) -> int | None:
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_ID:
        return None
    return int(text)
