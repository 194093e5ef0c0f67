"""The writing desk: statements written, edited and deleted in a Markdown editor with a live
preview rendered by the server, and the media library its images come from.

The preview is the mail's own rendering step (``content/compose.render_body`` with the
issue-level values), so what the editor shows is what readers get. The editor's script
(``static/desk.js``) posts the text to ``statement_preview`` with the page's CSRF token.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from newsletter.content import media, writing
from newsletter.content.compose import BODY_PLACEHOLDERS, render_body
from newsletter.content.jekyll import post_url
from newsletter.content.models import Statement
from newsletter.content.statements import MAX_STATEMENT_CHARS, get_statement, site
from newsletter.errors import NewsletterError
from newsletter.mail.render import body_values, fill_placeholders
from newsletter.web.admin.blueprint import bp
from newsletter.web.admin.desk_forms import MediaForm, StatementForm
from newsletter.web.admin.forms import ActionForm

#: the name the previews greet, as the issue preview does
SAMPLE_NAME = "Reader"


def preview_html(markdown: str, base_url: str | None = None) -> str:
    """A statement's Markdown as the mail shows it, with the sample reader's name;
    relative links and images resolve against ``base_url`` as they will in the mail."""
    html, _ = render_body(markdown, body_values(None), base_url=base_url)
    return fill_placeholders(html, name=SAMPLE_NAME, unsubscribe_url="", manage_url="", html=True)


def _form_fields(form: StatementForm) -> dict[str, Any]:
    return {
        "title": form.title.data or "",
        "body": form.body.data or "",
        "author": form.author.data or "",
        "when": form.date.data,
        "slug": (form.slug.data or "").strip(),
    }


def _show_error(form: StatementForm, error: NewsletterError) -> None:
    field = getattr(form, error.field or "", None)
    if field is None or error.field == "csrf_token":
        flash(error.message, "error")
    else:
        field.errors = [*field.errors, error.message]


def _preview_base(form: StatementForm, statement: Statement | None) -> str | None:
    """The address the statement being written will have on its site (its permalink, or
    Jekyll's default from the slug and date typed so far); None when the site is unknown."""
    front_matter = statement.front_matter or {} if statement is not None else {}
    slug = (form.slug.data or "").strip() or (statement.slug if statement is not None else "")
    when = form.date.data if isinstance(form.date.data, date) else None
    if when is None and statement is not None:
        when = statement.date
    return post_url(site(), front_matter, slug or "preview", when) or None


def _editor(form: StatementForm, statement: Any = None) -> tuple[str, int]:
    page = render_template(
        "admin/statement_form.html",
        form=form,
        statement=statement,
        placeholders=BODY_PLACEHOLDERS,
        preview=preview_html(form.body.data or "", _preview_base(form, statement))
        if form.body.data else "",
        upload_form=MediaForm(),
    )
    return page, 422 if form.errors else 200


@bp.route("/statements/new", methods=["GET", "POST"])
def statement_new() -> str | Response | tuple[str, int]:
    """Write a statement in the editor."""
    form = StatementForm()
    if form.validate_on_submit():
        try:
            statement = writing.create_statement(**_form_fields(form))
        except NewsletterError as error:
            _show_error(form, error)
        else:
            if form.previewed.data:
                writing.mark_previewed(statement)
            flash(f"Statement “{statement.title}” saved.", "success")
            return redirect(url_for("admin.statement", statement_id=statement.id))
    return _editor(form)


@bp.route("/statements/<int:statement_id>/edit", methods=["GET", "POST"])
def statement_edit(statement_id: int) -> str | Response | tuple[str, int]:
    """Change a statement's text and details; sent issues keep what they sent."""
    statement = get_statement(statement_id)
    form = StatementForm(obj=None if request.method == "POST" else statement)
    if request.method == "GET":
        form.body.data = statement.body
    if form.validate_on_submit():
        try:
            writing.update_statement(statement.id, **_form_fields(form))
        except NewsletterError as error:
            _show_error(form, error)
        else:
            if form.previewed.data:
                writing.mark_previewed(statement)
            flash("Statement saved.", "success")
            return redirect(url_for("admin.statement", statement_id=statement.id))
    return _editor(form, statement)


@bp.post("/statements/<int:statement_id>/delete")
def statement_delete(statement_id: int) -> Response:
    """Delete a statement (refused while an unsent issue holds it)."""
    if not ActionForm().validate_on_submit():
        abort(400)
    statement = get_statement(statement_id)
    title = statement.title
    try:
        detached = writing.delete_statement(statement.id)
    except NewsletterError as error:
        flash(f"Not deleted: {error.message}", "error")
        return redirect(url_for("admin.statement", statement_id=statement_id))
    kept = (
        f" The {detached} sent {'issue keeps' if detached == 1 else 'issues keep'} the copy "
        "they sent." if detached else ""
    )
    flash(f"Statement “{title}” deleted.{kept}", "success")
    return redirect(url_for("admin.statements"))


@bp.post("/statements/preview")
def statement_preview() -> Response | tuple[Response, int]:
    """``{"html": …}``: the Markdown posted (JSON ``markdown``, optional ``statement_id``)
    rendered as the mail renders it. Previewing a stored statement records it was seen."""
    data = request.get_json(silent=True) or {}
    markdown = data.get("markdown")
    if not isinstance(markdown, str) or len(markdown) > MAX_STATEMENT_CHARS:
        error = {"message": "send the Markdown as text", "field": "markdown"}
        return jsonify({"error": error}), 400
    statement_id = data.get("statement_id")
    statement = None
    if isinstance(statement_id, int):
        try:
            statement = get_statement(statement_id)
            writing.mark_previewed(statement)
        except NewsletterError:
            pass  # a statement deleted meanwhile: the preview still answers
    form = StatementForm(
        formdata=None, data={"slug": _text(data, "slug"), "date": _date(data.get("date"))}
    )
    html = preview_html(markdown.replace("\r\n", "\n"), _preview_base(form, statement))
    response = jsonify({"html": html})
    response.headers["Cache-Control"] = "no-store"
    return response


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    return value[:200] if isinstance(value, str) else ""


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


# --- media library --------------------------------------------------------------------------


def _upload(form: MediaForm) -> media.MediaItem:
    upload = form.file.data
    return media.upload(upload.read(), upload.filename or "image", user_id=current_user.id)


@bp.route("/media", methods=["GET", "POST"])
def media_library() -> str | Response | tuple[str, int]:
    """Every image, with the upload form; each shows the Markdown that inserts it."""
    form = MediaForm()
    if form.validate_on_submit():
        try:
            item = _upload(form)
        except NewsletterError as error:
            form.file.errors = [*form.file.errors, error.message]
        else:
            flash(f"“{item.filename}” uploaded.", "success")
            return redirect(url_for("admin.media_library"))
    page = render_template(
        "admin/media.html", form=form, items=media.list_media(), delete_form=ActionForm()
    )
    return page, 422 if form.errors else 200


@bp.post("/media/upload")
def media_upload() -> Response | tuple[Response, int]:
    """The editor's upload button: ``{"url", "markdown"}`` of the new image, or an error."""
    form = MediaForm()
    if not form.validate_on_submit():
        message = " ".join(error for errors in form.errors.values() for error in errors)
        return jsonify({"error": {"message": message or "choose an image", "field": "file"}}), 400
    try:
        item = _upload(form)
    except NewsletterError as error:
        return jsonify({"error": {"message": error.message, "field": "file"}}), 400
    return jsonify({"id": item.id, "url": item.url, "markdown": item.markdown}), 201


@bp.post("/media/<int:media_id>/delete")
def media_delete(media_id: int) -> Response:
    """Remove an image (the page asks first: mail already sent would lose it)."""
    if not ActionForm().validate_on_submit():
        abort(400)
    media.delete_media(media_id)
    flash("Image deleted.", "success")
    return redirect(url_for("admin.media_library"))
