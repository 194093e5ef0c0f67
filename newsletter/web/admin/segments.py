"""Segments in the admin: the list, create and edit (the query box, a small form builder
that writes the query, a live count), delete; and the CSV export of subscribers."""

from __future__ import annotations

from flask import (
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from newsletter.audience.export import export_filename, start_export
from newsletter.audience.models import MailingList
from newsletter.audience.segments import SegmentQueryError
from newsletter.audience.segments import service as segment_service
from newsletter.audience.segments.models import Segment
from newsletter.errors import NewsletterError
from newsletter.extensions import db
from newsletter.web.admin.blueprint import bp
from newsletter.web.admin.forms import ActionForm

QUERY_HELP = (
    'Comparisons FIELD OP VALUE joined by and, or, not and parentheses, e.g. list = "news" '
    'and attributes.city = "Madrid" and not bounced. Fields: email, name, status, list, '
    "attributes.KEY, subscribed_at, confirmed_at, received (an issue id), bounced. "
    'Operators: = != < <= > >= contains in [..]. Strings and dates ("YYYY-MM-DD") in '
    "double quotes."
)


class SegmentForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    query = TextAreaField(
        "Query", validators=[DataRequired(), Length(max=4000)], description=QUERY_HELP
    )


class ExportForm(FlaskForm):
    """The export's choices (a GET form: it changes nothing, so it carries no token)."""

    class Meta:
        csrf = False

    list = SelectField("List", choices=[], validators=[Optional()])
    segment = SelectField("Segment", choices=[], validators=[Optional()])


@bp.get("/segments")
def segments() -> str:
    """Every segment, and the subscriber export."""
    export = ExportForm(request.args)
    export.list.choices = [("", "Everyone")] + [
        (lst.slug, lst.name)
        for lst in db.session.scalars(select(MailingList).order_by(MailingList.name))
    ]
    everything = segment_service.list_segments()
    export.segment.choices = [("", "No segment")] + [(str(s.id), s.name) for s in everything]
    return render_template(
        "admin/segments.html", segments=everything, export=export, delete_form=ActionForm()
    )


@bp.route("/segments/new", methods=["GET", "POST"])
def segment_new() -> str | Response | tuple[str, int]:
    """Write a segment's query (or build it from rows), with a live count."""
    form = SegmentForm()
    if form.validate_on_submit():
        try:
            segment = segment_service.create_segment(
                form.name.data or "", form.query.data or "", created_by=current_user.id
            )
        except NewsletterError as error:
            db.session.rollback()
            _show_error(form, error)
        else:
            flash(f"Segment “{segment.name}” saved.", "success")
            return redirect(url_for("admin.segments"))
    return _render_form(form, None)


@bp.route("/segments/<int:segment_id>/edit", methods=["GET", "POST"])
def segment_edit(segment_id: int) -> str | Response | tuple[str, int]:
    """Change a segment; issues that target it use the new query when they start sending."""
    segment = segment_service.get_segment(segment_id)
    form = SegmentForm(obj=None if request.method == "POST" else segment)
    if form.validate_on_submit():
        try:
            segment_service.update_segment(
                segment.id, name=form.name.data or "", query=form.query.data or ""
            )
        except NewsletterError as error:
            db.session.rollback()
            _show_error(form, error)
        else:
            flash("Segment saved.", "success")
            return redirect(url_for("admin.segments"))
    return _render_form(form, segment)


@bp.post("/segments/<int:segment_id>/delete")
def segment_delete(segment_id: int) -> Response:
    """Delete a segment (draft issues that targeted it no longer do)."""
    if not ActionForm().validate_on_submit():
        abort(400)
    segment = segment_service.get_segment(segment_id)
    name = segment.name
    segment_service.delete_segment(segment.id)
    flash(f"Segment “{name}” deleted.", "success")
    return redirect(url_for("admin.segments"))


@bp.post("/segments/count")
def segment_count() -> tuple[Response, int]:
    """``{"count": N}`` for the typed query, or ``{"error": {"message", "position"}}``: the
    form's live count. Both are a 200 (a half-typed query is the normal case here, not a
    failed request). A POST with the form's CSRF token, so the query (which may hold
    addresses) stays out of URLs and logs."""
    if not ActionForm().validate_on_submit():
        return jsonify({"error": {"message": "the form has expired; reload the page",
                                  "position": None}}), 400
    text = request.form.get("query", "")
    try:
        count = segment_service.count_matching(text)
    except SegmentQueryError as error:
        return jsonify({"error": {"message": error.message, "reason": error.reason,
                                  "position": error.position}}), 200
    response = jsonify({"count": count})
    response.headers["Cache-Control"] = "no-store"
    return response, 200


@bp.get("/subscribers/export.csv")
def subscribers_export() -> Response:
    """Everyone, a list's confirmed members or a segment, as CSV, streamed."""
    list_slug = request.args.get("list") or None
    segment_raw = request.args.get("segment") or ""
    if segment_raw and not (segment_raw.isascii() and segment_raw.isdigit()):
        abort(404)
    segment_id = int(segment_raw) if segment_raw else None
    try:
        pieces = start_export(list_slug=list_slug, segment_id=segment_id)
    except NewsletterError:
        abort(404)
    name = export_filename(list_slug=list_slug, segment_id=segment_id)
    return Response(
        stream_with_context(pieces),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"',
                 "Cache-Control": "no-store"},
    )


def _show_error(form: SegmentForm, error: NewsletterError) -> None:
    field = getattr(form, error.field or "", None)
    if field is None or error.field == "csrf_token":
        flash(error.message, "error")
        return
    field.errors = [*field.errors, error.message]


def _render_form(form: SegmentForm, segment: Segment | None) -> tuple[str, int]:
    lists = list(db.session.scalars(select(MailingList.slug).order_by(MailingList.slug)))
    page = render_template(
        "admin/segment_form.html", form=form, segment=segment, list_slugs=lists,
        count_form=ActionForm(),
    )
    return page, 422 if form.errors else 200
