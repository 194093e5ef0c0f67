"""Lists and subscribers: tables, the create-list and add-subscriber forms (imports:
``imports.py``)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from newsletter.audience.consent import admin_consent
from newsletter.audience.list_counts import subscription_counts
from newsletter.audience.lists import create_list
from newsletter.audience.models import (
    ConsentSource,
    MailingList,
    OptIn,
)
from newsletter.audience.profile import check_gate
from newsletter.audience.subscriptions import subscribe
from newsletter.errors import NewsletterError
from newsletter.extensions import db
from newsletter.web.admin.blueprint import bp
from newsletter.web.admin.forms import ListForm, SubscriberForm


def _all_lists() -> list[MailingList]:
    return list(db.session.scalars(select(MailingList).order_by(MailingList.name)))


def _list_choices() -> list[tuple[str, str]]:
    return [(lst.slug, lst.name) for lst in _all_lists()]


def show_error(form: Any, error: NewsletterError, default_field: str) -> None:
    """Put a service's error beside the field it names (or ``default_field``)."""
    field = getattr(form, error.field or "", None) or getattr(form, default_field)
    field.errors = [*field.errors, error.message]


@bp.route("/lists", methods=["GET", "POST"])
def lists() -> str | Response | tuple[str, int]:
    """Every list with its subscriber counts, and a form to make a new one."""

    form = ListForm()
    if form.validate_on_submit():
        try:
            created = create_list(
                form.slug.data or "",
                form.name.data or "",
                description=form.description.data or "",
                optin=OptIn(form.optin.data),
                public=bool(form.public.data),
            )
        except NewsletterError as error:
            show_error(form, error, "slug")
        else:
            flash(f"List “{created.name}” created.", "success")
            return redirect(url_for("admin.lists"))
    status = 422 if form.errors else 200
    archived = request.args.get("archived") == "1"
    shown = [lst for lst in _all_lists() if (lst.archived_at is not None) == archived]
    page = render_template(
        "admin/lists.html", form=form, lists=shown, counts=subscription_counts(),
        archived=archived,
    )
    return page, status


@bp.route("/subscribers/new", methods=["GET", "POST"])
def subscriber_new() -> str | Response | tuple[str, int]:
    """Add one subscriber to lists; double opt-in lists mail a confirmation unless confirmed."""

    form = SubscriberForm()
    form.lists.choices = _list_choices()
    if form.validate_on_submit():
        if not form.lists.data:
            form.lists.errors = ["Choose at least one list."]
        else:
            try:
                check_gate([form.email.data or ""], via="admin")
                subscriber = subscribe(
                    form.email.data or "",
                    name=form.name.data or "",
                    list_slugs=list(form.lists.data),
                    source=ConsentSource.ADMIN,
                    confirmed=bool(form.confirmed.data),
                    consent=admin_consent(current_user.email),
                )
            except NewsletterError as error:
                show_error(form, error, "email")
            else:
                flash(f"{subscriber.email} added.", "success")
                return redirect(url_for("admin.subscriber", subscriber_id=subscriber.id))
    status = 422 if form.errors else 200
    return render_template("admin/subscriber_new.html", form=form), status
