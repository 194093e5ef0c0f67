"""Outgoing webhooks: the endpoints (add, edit, turn off, delete), their secret (shown when
made, and again on an admin's request; rotated), and each endpoint's delivery log with a
retry button. Admins only (``auth/permissions.py``): the messages name subscribers.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import StringField
from wtforms.validators import DataRequired, Length, Optional

from newsletter import events
from newsletter.delivery.webhooks import service
from newsletter.delivery.webhooks.models import WebhookEndpoint
from newsletter.errors import ValidationError
from newsletter.extensions import db
from newsletter.web.admin.blueprint import bp
from newsletter.web.admin.forms import ActionForm, MultiCheckboxField, choices

EVENT_CHOICES = [(kind, f"{kind}: {events.DESCRIPTIONS[kind]}") for kind in events.EVENT_KINDS]


class WebhookForm(FlaskForm):
    url = StringField(
        "Address", validators=[DataRequired(), Length(max=service.URL_MAX)],
        description="Where the events are POSTed as JSON, e.g. https://crm.example.org/hooks/news",
        render_kw={"inputmode": "url", "autocomplete": "off", "spellcheck": "false"},
    )  # fmt: skip
    description = StringField(
        "Description", validators=[Optional(), Length(max=service.DESCRIPTION_MAX)],
        description="What it is for (shown here only).",
    )  # fmt: skip
    events = MultiCheckboxField(
        "Events it receives", choices=choices(EVENT_CHOICES),
        validators=[DataRequired(message="Choose at least one event.")],
    )  # fmt: skip


def _show(form: WebhookForm, error: ValidationError) -> None:
    field = getattr(form, error.field or "", None) or form.url
    field.errors = [*field.errors, error.message[:1].upper() + error.message[1:] + "."]


@bp.route("/webhooks", methods=["GET", "POST"])
def webhooks() -> str | tuple[str, int]:
    """Every endpoint with its counts, and the form to add one; a new endpoint's secret is
    shown on this answer."""
    form = WebhookForm()
    made: WebhookEndpoint | None = None
    if form.validate_on_submit():
        try:
            made = service.create_endpoint(
                form.url.data or "", form.events.data or [], known=events.EVENT_KINDS,
                description=form.description.data or "",
            )  # fmt: skip
        except ValidationError as error:
            db.session.rollback()
            _show(form, error)
        else:
            form = WebhookForm(formdata=None)
    return render_template(
        "admin/webhooks.html",
        form=form,
        made=made,
        endpoints=service.list_endpoints(),
        stats=service.endpoint_stats(),
        action=ActionForm(),
    ), 422 if form.errors else 200


def _endpoint_page(
    endpoint: WebhookEndpoint, *, form: WebhookForm | None = None, secret: str | None = None,
    rotated: bool = False,
) -> tuple[str, int]:  # fmt: skip
    if form is None:
        form = WebhookForm(formdata=None, obj=endpoint)
        form.events.data = list(endpoint.events)
    before = request.args.get("before", type=int)
    log = service.recent_messages(endpoint.id, before=before)
    return render_template(
        "admin/webhook.html",
        endpoint=endpoint,
        form=form,
        secret=secret,
        rotated=rotated,
        log=log,
        before=before,
        next_before=log[-1].id if len(log) == 50 else None,
        max_attempts=service.max_attempts(),
        action=ActionForm(),
    ), 422 if form.errors else 200


@bp.route("/webhooks/<int:endpoint_id>", methods=["GET", "POST"])
def webhook(endpoint_id: int) -> str | Response | tuple[str, int]:
    """One endpoint: its settings (the form changes them) and its delivery log."""
    endpoint = service.get_endpoint(endpoint_id)
    form = WebhookForm() if request.method == "POST" else None
    if form is not None and form.validate_on_submit():
        try:
            service.update_endpoint(
                endpoint_id, url=form.url.data or "", events=form.events.data or [],
                known=events.EVENT_KINDS, description=form.description.data or "",
            )  # fmt: skip
        except ValidationError as error:
            db.session.rollback()
            _show(form, error)
        else:
            flash("Endpoint saved.", "success")
            return redirect(url_for("admin.webhook", endpoint_id=endpoint_id))
    return _endpoint_page(endpoint, form=form)


@bp.post("/webhooks/<int:endpoint_id>/secret")
def webhook_secret(endpoint_id: int) -> str | Response | tuple[str, int]:
    """Show the endpoint's secret (a POST: it is recorded in the audit log)."""
    endpoint = service.get_endpoint(endpoint_id)
    if not ActionForm().validate_on_submit():
        return redirect(url_for("admin.webhook", endpoint_id=endpoint_id))
    return _endpoint_page(endpoint, secret=endpoint.secret)


@bp.post("/webhooks/<int:endpoint_id>/rotate")
def webhook_rotate(endpoint_id: int) -> str | Response | tuple[str, int]:
    """A new secret, shown now; the old one signs beside it for a day."""
    if not ActionForm().validate_on_submit():
        return redirect(url_for("admin.webhook", endpoint_id=endpoint_id))
    endpoint = service.rotate_secret(endpoint_id)
    return _endpoint_page(endpoint, secret=endpoint.secret, rotated=True)


@bp.post("/webhooks/<int:endpoint_id>/active")
def webhook_active(endpoint_id: int) -> Response:
    """Turn an endpoint off (it gets no new message) or on again."""
    if ActionForm().validate_on_submit():
        active = request.form.get("active") == "1"
        service.set_active(endpoint_id, active)
        flash("Endpoint turned on." if active else "Endpoint turned off.", "success")
    return redirect(url_for("admin.webhook", endpoint_id=endpoint_id))


@bp.post("/webhooks/<int:endpoint_id>/delete")
def webhook_delete(endpoint_id: int) -> Response:
    """Delete an endpoint with its delivery log."""
    if ActionForm().validate_on_submit():
        url = service.get_endpoint(endpoint_id).url
        service.delete_endpoint(endpoint_id)
        flash(f"Endpoint {url} deleted, with its delivery log.", "success")
        return redirect(url_for("admin.webhooks"))
    return redirect(url_for("admin.webhook", endpoint_id=endpoint_id))


@bp.post("/webhooks/<int:endpoint_id>/messages/<int:message_id>/retry")
def webhook_retry(endpoint_id: int, message_id: int) -> Response:
    """Send a delivered or failed message again, once, now."""
    if ActionForm().validate_on_submit():
        try:
            service.retry_message(endpoint_id, message_id)
        except ValidationError as error:
            flash(error.message[:1].upper() + error.message[1:] + ".", "error")
        else:
            flash(f"Message {message_id} queued to be sent again.", "success")
    return redirect(url_for("admin.webhook", endpoint_id=endpoint_id))
