"""The dashboard: how many of everything, and the latest issues."""

from __future__ import annotations

from typing import Any

from flask import render_template
from sqlalchemy import select

from newsletter.audience.models import MailingList, Subscriber
from newsletter.content.models import Issue, Statement
from newsletter.extensions import db
from newsletter.ops.estimates import Tally, table_count
from newsletter.web.admin.blueprint import bp

RECENT_ISSUES = 5


def _count(model: Any) -> Tally:
    # Estimated at size ("about 1,000,000"): count(*) reads every row (ops/estimates.py).
    return table_count(model.__table__)


@bp.get("/")
def dashboard() -> str:
    """Counts of subscribers, lists, statements and issues (estimates past
    ``EXACT_BELOW`` rows, said to be so), and the recent issues."""
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
