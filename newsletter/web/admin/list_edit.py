"""Editing a list (name, description, visibility, opt-in) and archiving it.

An archived list leaves the signup form and the compose pickers; the lists page shows it
under the "archived" filter, where it can be brought back.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from newsletter.audience.lists import get_list, update_list
from newsletter.audience.models import OptIn
from newsletter.errors import NewsletterError
from newsletter.web.admin.blueprint import bp
from newsletter.web.admin.forms import ActionForm
from newsletter.web.admin.subscriber_forms import ListEditForm


@bp.route("/lists/<int:list_id>/edit", methods=["GET", "POST"])
def list_edit(list_id: int) -> Response | tuple[str, int]:
    """Change a list's name, description, visibility and opt-in (the slug stays)."""
    lst = get_list(list_id)
    form = ListEditForm(obj=None if request.method == "POST" else lst)
    if request.method == "GET":
        form.optin.data = lst.optin.value
    if form.validate_on_submit():
        try:
            update_list(
                list_id,
                name=form.name.data or "",
                description=form.description.data or "",
                public=bool(form.public.data),
                optin=OptIn(form.optin.data),
            )
        except NewsletterError as error:
            field = getattr(form, error.field or "", None) or form.name
            field.errors = [*field.errors, error.message]
        else:
            flash(f"List “{lst.name}” saved.", "success")
            return redirect(url_for("admin.lists", archived="1" if lst.archived_at else None))
    status = 422 if form.errors else 200
    html = render_template(
        "admin/list_edit.html", lst=lst, form=form, action_form=ActionForm()
    )
    return html, status


@bp.post("/lists/<int:list_id>/archive")
def list_archive(list_id: int) -> Response:
    """Archive the list (``archived=1``) or bring it back (``archived=0``)."""
    if not ActionForm().validate_on_submit():
        abort(400)
    archived = request.form.get("archived") == "1"
    lst = update_list(list_id, archived=archived)
    flash(f"List “{lst.name}” {'archived' if archived else 'back from the archive'}.", "success")
    return redirect(url_for("admin.lists", archived="1" if not archived else None))
