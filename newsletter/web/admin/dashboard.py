"""The dashboard: how many of everything, and the latest issues."""

from __future__ import annotations

from flask import render_template
from sqlalchemy import func, select

from newsletter.audience.models import MailingList, Subscriber
from newsletter.content.models import Issue, Statement
from newsletter.extensions import db
from newsletter.web.admin.blueprint import bp

RECENT_ISSUES = 5


def _count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


@bp.get("/")
def dashboard() -> str:
    """Counts of subscribers, lists, statements and issues, and the recent issues."""
    counts = {
        "subscribers": _count(Subscriber),
        "lists": _count(MailingList),
        "statements": _count(Statement),
        "issues": _count(Issue),
    }
    recent = db.session.scalars(
        select(Issue).order_by(Issue.created_at.desc(), Issue.id.desc()).limit(RECENT_ISSUES)
    ).all()
    return render_template("admin/dashboard.html", counts=counts, recent=recent)
