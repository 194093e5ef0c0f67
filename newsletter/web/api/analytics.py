"""GET /issues/{id}/analytics: what the issue's Analytics tab shows, as JSON."""

from __future__ import annotations

from typing import Any

from newsletter.delivery.analytics.report import issue_analytics
from newsletter.web.api.blueprint import bp
from newsletter.web.api.edge import errors
from newsletter.web.api.schemas import AnalyticsSchema


@bp.get("/issues/<int:issue_id>/analytics")
@bp.response(200, AnalyticsSchema, description="the issue's analytics")
@errors(404)
def get_issue_analytics(issue_id: int) -> dict[str, Any]:
    """Delivered, failed, bounced, complaints and unsubscribes (and opens and clicks when
    tracked) in all and over time; filtered opens and clicks counted apart."""
    return issue_analytics(issue_id).as_dict()
