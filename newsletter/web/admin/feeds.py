"""Feeds: the list with each feed's state and last error, add, edit, delete, poll now.

Turning on automatic sending for a feed is sending to its lists without a further click,
so it takes the right to send (``SEND``), not only to edit.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import BooleanField, IntegerField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from newsletter.audience.models import MailingList
from newsletter.auth import permissions
from newsletter.content import feeds as feed_service
from newsletter.errors import NewsletterError
from newsletter.extensions import db
from newsletter.web.admin.blueprint import bp
from newsletter.web.admin.forms import ActionForm, MultiCheckboxField


class FeedForm(FlaskForm):
    url = StringField(
        "Feed address", validators=[DataRequired(), Length(max=2000)],
        description="An RSS or Atom feed, e.g. https://example.org/feed.xml",
        render_kw={"inputmode": "url", "autocomplete": "off"},
    )  # fmt: skip
    title = StringField(
        "Name", validators=[Optional(), Length(max=300)],
        description="Shown here; the feed's own title when left empty.",
    )  # fmt: skip
    interval = IntegerField(
        "Poll every (minutes)",
        validators=[Optional(), NumberRange(min=1, max=7 * 24 * 60)],
        description="How often the workers look for new entries.",
    )
    lists = MultiCheckboxField("Lists for draft issues", choices=[])
    auto_open_draft = BooleanField("Open a draft issue for each new entry")
    auto_send = BooleanField(
        "Send that issue automatically, without an editor (off unless you turn it on)"
    )


def _form(feed: object | None = None) -> FeedForm:
    form = FeedForm(obj=feed)
    lists = db.session.scalars(select(MailingList).order_by(MailingList.name))
    form.lists.choices = [(lst.slug, lst.name) for lst in lists]
    return form


def _fields(form: FeedForm) -> dict[str, object]:
    minutes = form.interval.data
    return {
        "url": form.url.data or "",
        "title": form.title.data or "",
        "interval": minutes * 60 if minutes else None,
        "list_slugs": form.lists.data or [],
        "auto_open_draft": bool(form.auto_open_draft.data),
        "auto_send": bool(form.auto_send.data),
    }


def _may_auto_send(form: FeedForm, was_on: bool = False) -> bool:
    if form.auto_send.data and not was_on and not permissions.may_open(
        current_user, "admin.issue_send", "POST"
    ):
        refusal = "Only those who may send to lists can turn this on."
        form.auto_send.errors = [*form.auto_send.errors, refusal]
        return False
    return True


def _show(form: FeedForm, error: NewsletterError) -> None:
    field = getattr(form, error.field or "", None) or form.url
    field.errors = [*field.errors, error.message]


@bp.route("/feeds", methods=["GET", "POST"])
def feeds() -> str | Response | tuple[str, int]:
    """Every feed with its state (last poll, next poll, error), and the form to add one."""
    form = _form()
    if form.validate_on_submit() and _may_auto_send(form):
        try:
            feed = feed_service.add_feed(**_fields(form))  # type: ignore[arg-type]
        except NewsletterError as error:
            db.session.rollback()
            _show(form, error)
        else:
            flash(f"Feed {feed.url} added; the workers poll it within a minute.", "success")
            return redirect(url_for("admin.feeds"))
    status = 422 if form.errors else 200
    return render_template(
        "admin/feeds.html", form=form, feeds=feed_service.list_feeds(), action=ActionForm()
    ), status


@bp.route("/feeds/<int:feed_id>", methods=["GET", "POST"])
def feed_edit(feed_id: int) -> str | Response | tuple[str, int]:
    """Change a feed's address, name, interval, lists and what a new entry does."""
    feed = feed_service.get_feed(feed_id)
    form = _form(feed)
    if not form.is_submitted():
        form.interval.data = feed.interval // 60
        form.lists.data = [lst.slug for lst in feed.lists]
    if form.validate_on_submit() and _may_auto_send(form, was_on=feed.auto_send):
        try:
            feed_service.update_feed(feed_id, **_fields(form))
        except NewsletterError as error:
            _show(form, error)
        else:
            flash("Feed saved.", "success")
            return redirect(url_for("admin.feeds"))
    status = 422 if form.errors else 200
    return render_template("admin/feed_edit.html", form=form, feed=feed), status


@bp.post("/feeds/<int:feed_id>/delete")
def feed_delete(feed_id: int) -> Response:
    """Unsubscribe from a feed (its statements and issues stay)."""
    if ActionForm().validate_on_submit():
        feed = feed_service.get_feed(feed_id)
        url = feed.url
        feed_service.delete_feed(feed_id)
        flash(f"Feed {url} deleted; its statements stay.", "success")
    return redirect(url_for("admin.feeds"))


@bp.post("/feeds/<int:feed_id>/poll")
def feed_poll(feed_id: int) -> Response:
    """Poll a feed now, here, and say what came of it."""
    if ActionForm().validate_on_submit():
        feed_service.get_feed(feed_id)
        result = feed_service.poll_feed(feed_id)
        flash(f"Polled: {result.describe()}.", "error" if result.error else "success")
    return redirect(url_for("admin.feeds"))
