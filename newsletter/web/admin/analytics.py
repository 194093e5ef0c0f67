"""An issue's Analytics tab: what happened after it left, as SVG charts with tables, and its
open and click tracking (off unless an editor turns it on)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from markupsafe import Markup
from werkzeug.wrappers import Response
from wtforms import RadioField

from newsletter.content.issues import get_issue
from newsletter.content.models import TrackingMode
from newsletter.delivery.analytics.report import EVENT_SERIES, IssueAnalytics, issue_analytics
from newsletter.delivery.analytics.scanners import PROXY_AGENTS, SCANNER_AGENTS
from newsletter.delivery.analytics.settings import set_tracking
from newsletter.errors import NewsletterError
from newsletter.web.admin.blueprint import bp
from newsletter.web.admin.forms import choices
from newsletter.web.charts import Series, bar_chart, line_chart

#: what each mode means, as the form offers it
MODES = {
    TrackingMode.OFF.value: "Off: no pixel, links as written (the default)",
    TrackingMode.AGGREGATE.value: "Counts only: opens and clicks by the hour, nobody's own",
    TrackingMode.INDIVIDUAL.value: "Per reader: also who opened and clicked what",
}


class TrackingForm(FlaskForm):
    mode = RadioField("Open and click tracking", choices=choices(list(MODES.items())))


def _label(moment: datetime, bucket: timedelta) -> str:
    """A short time label in UTC: ``1 Dec 14:00``, or ``1 Dec`` for day buckets."""
    day = f"{moment.day} {moment.strftime('%b')}"
    return day if bucket >= timedelta(days=1) else f"{day} {moment.strftime('%H:%M')}"


def charts(report: IssueAnalytics) -> dict[str, Any]:
    """The page's charts (SVG markup) and the rows of the tables beside them."""
    delivery_labels = [_label(point.at, timedelta(minutes=1)) for point in report.delivery]
    delivery = None
    if report.delivery:
        delivery = line_chart(
            "chart-delivery",
            "Delivered and failed so far",
            delivery_labels,
            [
                Series("sent", "Delivered", [p.values["sent"] for p in report.delivery]),
                Series("failed", "Failed", [p.values["failed"] for p in report.delivery]),
            ],
        )
    event_labels = [_label(point.at, report.bucket) for point in report.events]
    events: list[tuple[str, str, Markup]] = []
    shown = [key for key in EVENT_SERIES
             if key not in ("opens", "clicks") or report.tracking is not TrackingMode.OFF
             or report.totals[key]]  # fmt: skip
    for key in shown:
        label = EVENT_SERIES[key]
        values = [point.values[key] for point in report.events]
        events.append((key, label, bar_chart(f"chart-{key}", label, event_labels,
                                             Series(key, label, values))))  # fmt: skip
    return {
        "delivery_chart": delivery,
        "delivery_rows": list(zip(delivery_labels, report.delivery, strict=True)),
        "event_charts": events,
        "event_keys": shown,
        "event_rows": list(zip(event_labels, report.events, strict=True)),
        "bucket_label": _bucket_label(report.bucket),
    }


def _bucket_label(bucket: timedelta) -> str:
    hours = int(bucket.total_seconds() // 3600)
    if hours % 24 == 0:
        days = hours // 24
        return "day" if days == 1 else f"{days} days"
    return "hour" if hours == 1 else f"{hours} hours"


@bp.get("/issues/<int:issue_id>/analytics")
def issue_analytics_page(issue_id: int) -> str:
    """Delivered, failed, bounced, complaints, unsubscribes (and opens and clicks when
    tracked) over time."""
    issue = get_issue(issue_id)
    report = issue_analytics(issue_id)
    form = TrackingForm(mode=issue.tracking.value)
    return render_template(
        "admin/issue_analytics.html",
        issue=issue,
        report=report,
        totals=report.totals,
        form=form,
        modes=MODES,
        scanner_agents=[label for _, label in SCANNER_AGENTS],
        proxy_agents=[label for _, label in PROXY_AGENTS],
        **charts(report),
    )


@bp.post("/issues/<int:issue_id>/tracking")
def issue_tracking(issue_id: int) -> Response:
    """Set the issue's open and click tracking."""
    form = TrackingForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        set_tracking(issue_id, TrackingMode(form.mode.data))
    except NewsletterError as error:
        flash(f"Tracking not changed: {error.message}.", "error")
    else:
        flash(f"Tracking: {MODES[str(form.mode.data)]}.", "success")
    return redirect(url_for("admin.issue_analytics_page", issue_id=issue_id))
