"""The Bounces page: the policy (shown and set), the messages nobody could read (view,
classify by hand, dismiss) and the latest events; and the Reinstate action of a subscriber's
page. Admins only (the events name addresses); every change a POST with the CSRF token.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import IntegerField, SelectField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from newsletter.delivery.bounces import policy, settings
from newsletter.errors import NewsletterError
from newsletter.web.admin.audience import show_error
from newsletter.web.admin.blueprint import bp
from newsletter.web.admin.forms import ActionForm, choices

#: the most of a kept message shown on its page (it may be large, and it is shown as text)
SHOWN_BYTES = 64 * 1024


class PolicyForm(FlaskForm):
    score_threshold = IntegerField(
        "Soft bounces that stop an address",
        validators=[DataRequired(), NumberRange(*settings.THRESHOLD_RANGE)],
        description="At most one soft bounce counts per day.",
    )
    stale_days = IntegerField(
        "Days after which a soft bounce is forgotten",
        validators=[DataRequired(), NumberRange(*settings.STALE_RANGE)],
        description="With no counted bounce for this long, the score starts again.",
    )


class ResolveForm(FlaskForm):
    kind = SelectField(
        "What it is",
        choices=choices(
            [
                ("hard", "Hard bounce: stop the address"),
                ("soft", "Soft bounce: score it"),
                ("complaint", "Complaint: unsubscribe everywhere"),
                ("dismiss", "Nothing to act on: dismiss"),
            ]
        ),  # fmt: skip
    )
    email = StringField("Address it is about", validators=[Optional(), Length(max=320)],
                        description="Needed unless you dismiss it.")  # fmt: skip


@bp.route("/bounces", methods=["GET", "POST"])
def bounces() -> tuple[str, int] | Response:
    """The policy, the unread messages and the latest bounce and complaint events."""
    current = settings.current()
    form = PolicyForm(data={"score_threshold": current.score_threshold,
                            "stale_days": current.stale_days})  # fmt: skip
    if form.validate_on_submit():
        try:
            settings.save(form.score_threshold.data or 0, form.stale_days.data or 0,
                          by=current_user.email)  # fmt: skip
        except NewsletterError as error:
            show_error(form, error, "score_threshold")
        else:
            flash("Bounce policy saved.", "success")
            return redirect(url_for("admin.bounces"))
    return render_template(
        "admin/bounces.html",
        form=form,
        policy=current,
        unread=policy.unread(),
        events=policy.recent_events(),
    ), 422 if form.errors else 200


@bp.get("/bounces/unread/<int:unread_id>")
def bounce_unread(unread_id: int) -> str:
    """One message nobody could read: its headers and text, and the form to deal with it."""
    message = policy.get_unread(unread_id)
    return render_template(
        "admin/bounce_unread.html",
        message=message,
        text=message.raw[:SHOWN_BYTES].decode("utf-8", "replace"),
        truncated=len(message.raw) > SHOWN_BYTES,
        form=ResolveForm(),
    )


@bp.post("/bounces/unread/<int:unread_id>/resolve")
def bounce_unread_resolve(unread_id: int) -> Response:
    """Classify a kept message by hand, or dismiss it."""
    form = ResolveForm()
    if not form.validate_on_submit():
        flash("The form expired; try again.", "error")
        return redirect(url_for("admin.bounce_unread", unread_id=unread_id))
    kind = None if form.kind.data == "dismiss" else form.kind.data
    address = (form.email.data or "").strip()
    if kind is not None and not address:
        flash("Name the address the message is about, or dismiss it.", "error")
        return redirect(url_for("admin.bounce_unread", unread_id=unread_id))
    try:
        event = policy.resolve_unread(unread_id, kind=kind, email=address)
    except NewsletterError as error:
        flash(error.message, "error")
        return redirect(url_for("admin.bounces"))
    if kind is None:
        flash("Dismissed.", "success")
    elif event is None:
        flash(f"Recorded; no subscriber has the address {address}, so nothing changed.",
              "success")  # fmt: skip
    else:
        flash(f"Recorded as a {kind} report.", "success")
    return redirect(url_for("admin.bounces"))


@bp.post("/subscribers/<int:subscriber_id>/reinstate")
def subscriber_reinstate(subscriber_id: int) -> Response:
    """Mail the address again: off the blocklist, its soft-bounce score back to zero."""
    if ActionForm().validate_on_submit():
        policy.reinstate(subscriber_id, by=current_user.email)
        flash("Reinstated: the address is mailed again on the lists it is confirmed on.",
              "success")  # fmt: skip
    else:
        flash("The form expired; try again.", "error")
    return redirect(url_for("admin.subscriber", subscriber_id=subscriber_id))
