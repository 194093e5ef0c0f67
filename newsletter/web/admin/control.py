"""Controlling a send from the admin pages: schedule, pause, resume, cancel, retry failed;
the delivery log; the editor's own settings (their timezone).

Every action is a POST with a CSRF token; the domain errors (``IssueStateError`` when a
worker or another editor changed the issue first) come back as a flash on the issue page.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length

from newsletter.content.issues import get_issue
from newsletter.content.models import Issue
from newsletter.delivery.control import actions as control
from newsletter.delivery.control import log as delivery_log
from newsletter.delivery.control import timezones
from newsletter.delivery.models import DeliveryStatus
from newsletter.errors import NewsletterError, ValidationError
from newsletter.extensions import db
from newsletter.models import utcnow
from newsletter.web.admin.blueprint import bp
from newsletter.web.admin.forms import ActionForm
from newsletter.web.ids import MAX_ID

#: the format of ``<input type="datetime-local">``
LOCAL_INPUT_FORMAT = "%Y-%m-%dT%H:%M"


class ScheduleForm(FlaskForm):
    send_at = StringField(
        "Send at",
        validators=[DataRequired(message="Choose a date and time."), Length(max=40)],
        render_kw={"type": "datetime-local"},
    )
    timezone = SelectField("Timezone", validate_choice=False)


class ProfileForm(FlaskForm):
    timezone = SelectField(
        "Your timezone",
        validate_choice=False,
        description="Send times are typed and shown in this zone.",
    )


def user_timezone() -> str:
    """The logged-in editor's timezone name (UTC when unset or unknown)."""
    name = getattr(current_user, "timezone", None) or timezones.DEFAULT_TIMEZONE
    try:
        return timezones.check_timezone(name)
    except ValidationError:
        return timezones.DEFAULT_TIMEZONE


def schedule_form(issue: Any) -> ScheduleForm:
    """The schedule form for the issue page: its time, or an hour from now, in the editor's
    timezone."""
    form = ScheduleForm(formdata=None)
    zone = user_timezone()
    form.timezone.choices = timezones.picker_choices(zone)
    form.timezone.data = zone
    when = issue.send_at or (utcnow() + timedelta(hours=1)).replace(second=0, microsecond=0)
    local = timezones.in_zone(when, zone)
    form.send_at.data = local.strftime(LOCAL_INPUT_FORMAT) if local else ""
    return form


@bp.app_template_filter("local_when")
def format_local_when(value: datetime | None, zone: str | None = None) -> str:
    """A timestamp on the editor's clock: ``2026-12-01 09:30 Europe/Berlin``."""
    if value is None:
        return ""
    name = zone or user_timezone()
    local = timezones.in_zone(value, name)
    assert local is not None
    return f"{local:%Y-%m-%d %H:%M} {name}"


@bp.app_template_filter("duration")
def format_duration(seconds: float | None) -> str:
    """``1 h 05 min``, ``4 min 10 s``, ``12 s``; blank for None."""
    if seconds is None:
        return ""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


# --- actions ------------------------------------------------------------------------------


@bp.post("/issues/<int:issue_id>/schedule")
def issue_schedule(issue_id: int) -> Response:
    """Schedule (or move) the send to a local date and time in the chosen timezone."""

    get_issue(issue_id)
    form = ScheduleForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        for errors in form.errors.values():
            for error in errors:
                flash(f"Not scheduled: {error}", "error")
        return _back(issue_id)
    try:
        zone = timezones.get_zone(form.timezone.data)
        send_at = timezones.parse_when(form.send_at.data or "", zone)
        control.schedule(issue_id, send_at)
    except NewsletterError as error:
        flash(f"Not scheduled: {error.message}", "error")
        return _back(issue_id)
    _remember_timezone(str(zone.key))
    flash(
        f"Scheduled for {format_local_when(send_at, str(zone.key))}"
        f" ({send_at:%Y-%m-%d %H:%M} UTC).",
        "success",
    )
    return _back(issue_id)


def _remember_timezone(name: str) -> None:
    """The zone an editor schedules in becomes their default for next time."""
    if current_user.is_authenticated and current_user.timezone != name:
        current_user.timezone = name
        db.session.commit()


def _act(
    issue_id: int, action: Callable[[int], Any], done: str, failed: str
) -> Response:
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)

    get_issue(issue_id)
    try:
        result = action(issue_id)
    except NewsletterError as error:
        flash(f"{failed}: {error.message}.", "error")
    else:
        flash(done.format(result=result), "success")
    return _back(issue_id)


@bp.post("/issues/<int:issue_id>/unschedule")
def issue_unschedule(issue_id: int) -> Response:
    """Back to draft: it will not be sent at its time."""
    return _act(issue_id, control.unschedule, "Unscheduled: the issue is a draft again.",
                "Not unscheduled")


@bp.post("/issues/<int:issue_id>/pause")
def issue_pause(issue_id: int) -> Response:
    """Stop between two messages; resume later."""
    return _act(issue_id, control.pause, "Paused. Messages already handed to the relay stay sent.",
                "Not paused")


@bp.post("/issues/<int:issue_id>/resume")
def issue_resume(issue_id: int) -> Response:
    """Continue a paused send."""
    return _act(issue_id, control.resume, "Resumed.", "Not resumed")


@bp.post("/issues/<int:issue_id>/cancel")
def issue_cancel(issue_id: int) -> Response:
    """Stop for good; whoever has not got it yet will not."""
    return _act(issue_id, control.cancel, "Cancelled. Nobody else will get this issue.",
                "Not cancelled")


@bp.post("/issues/<int:issue_id>/retry")
def issue_retry(issue_id: int) -> Response:
    """Send the failed deliveries again (not hard bounces)."""
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)

    get_issue(issue_id)
    try:
        count = control.retry_failed(issue_id)
    except NewsletterError as error:
        flash(f"Not retried: {error.message}.", "error")
    else:
        if count:
            noun = "delivery" if count == 1 else "deliveries"
            flash(f"Retrying {count} failed {noun}.", "success")
        else:
            flash("Nothing to retry: the failures left are hard bounces or blocklisted "
                  "addresses.", "info")
    return _back(issue_id)


def _back(issue_id: int) -> Response:
    return redirect(url_for("admin.issue", issue_id=issue_id))


# --- the delivery log ---------------------------------------------------------------------


@bp.get("/deliveries")
def deliveries() -> tuple[str, int] | str:
    """Search the deliveries by address, issue and status: what happened to each message."""
    email = request.args.get("email", "").strip()
    issue_text = request.args.get("issue", "").strip()
    status_text = request.args.get("status", "").strip()
    after = _int_arg("after", 0)
    errors: list[str] = []
    issue_id: int | None = None
    if issue_text:
        issue_id = _parse_int(issue_text)
        if issue_id is None:
            errors.append("Issue must be an issue number.")
    try:
        status = delivery_log.parse_status(status_text)
    except ValidationError as error:
        errors.append(error.message)
        status = None
    page = None
    if not errors:
        page = delivery_log.search(
            email=email or None, issue_id=issue_id, status=status, after=after or 0
        )

    html = render_template(
        "admin/deliveries.html",
        email=email,
        issue_text=issue_text,
        status_text=status_text,
        statuses=[s.value for s in DeliveryStatus],
        page=page,
        after=after,
        errors=errors,
        issue_subject=_issue_subject(issue_id),
    )
    return (html, 422) if errors else html


def _int_arg(name: str, default: int) -> int:
    value = _parse_int(request.args.get(name, ""))
    return default if value is None else value


def _parse_int(text: str) -> int | None:
    text = text.strip().lstrip("#")
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value <= MAX_ID else None


def _issue_subject(issue_id: int | None) -> str | None:
    if issue_id is None:
        return None

    issue = db.session.get(Issue, issue_id)
    return issue.subject if issue is not None else None


# --- the editor's settings ----------------------------------------------------------------


@bp.route("/profile", methods=["GET", "POST"])
def profile() -> str | Response | tuple[str, int]:
    """The editor's own settings: the timezone send times are typed and shown in."""
    form = ProfileForm()
    form.timezone.choices = timezones.picker_choices(user_timezone())
    if request.method == "GET":
        form.timezone.data = user_timezone()
    elif form.validate_on_submit():
        try:
            name = timezones.check_timezone(form.timezone.data)
        except ValidationError as error:
            form.timezone.errors = [error.message]
        else:
            current_user.timezone = name
            db.session.commit()
            flash(f"Your timezone is now {name}.", "success")
            return redirect(url_for("admin.profile"))
    status = 422 if form.errors else 200
    return render_template("admin/profile.html", form=form), status
