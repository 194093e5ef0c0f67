"""Templates: the list, new, copy, edit (a textarea editor with errors by line, a preview
with sample data and the variables beside it) and delete.

Built-in templates are shown read-only with a "Copy" button; the services in
``content/template_editing.py`` check every save and refuse what may not be deleted.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from newsletter.content import template_editing
from newsletter.content.models import Template, TemplateKind
from newsletter.content.templates import (
    default_template,
    describe_builtin,
    get_template,
    list_templates,
)
from newsletter.errors import NewsletterError, TemplateSourceError
from newsletter.web.admin.blueprint import bp
from newsletter.web.admin.forms import ActionForm
from newsletter.web.admin.frames import framed_html
from newsletter.web.admin.template_forms import TemplateForm

#: lines shown on each side of the line an error names
CONTEXT_LINES = 2


@bp.get("/templates")
def templates() -> str:
    """Every template, built-in ones first, with what each is for."""
    return render_template(
        "admin/templates.html", templates=list_templates(), describe=describe_builtin,
        action_form=ActionForm(),
    )


def _excerpt(source: str, line: int | None) -> list[tuple[int, str, bool]]:
    """The lines around ``line`` as (number, text, is_the_line)."""
    if not line:
        return []
    lines = source.replace("\r\n", "\n").split("\n")
    first, last = max(1, line - CONTEXT_LINES), min(len(lines), line + CONTEXT_LINES)
    return [(number, lines[number - 1], number == line) for number in range(first, last + 1)]


def _show_error(form: TemplateForm, error: NewsletterError) -> dict[str, Any]:
    """Put the error beside its field; return what the page shows about a line."""
    if isinstance(error, TemplateSourceError):
        field = form.mjml if error.part == "mjml" else form.text
        field.errors = [*field.errors, error.message]
        return {"part": error.part, "line": error.line,
                "excerpt": _excerpt(field.data or "", error.line)}
    field = getattr(form, error.field or "", None) if error.field in ("name", "kind") else None
    if field is None:
        flash(error.message, "error")
    else:
        field.errors = [*field.errors, error.message]
    return {}


def _editor(form: TemplateForm, template: Template | None, problem: dict[str, Any]) -> tuple[
    str, int
]:
    kind = TemplateKind(form.kind.data or "issue")
    text_preview, preview_error = "", None
    if template is not None:
        try:
            text_preview = template_editing.preview(template)[1]
        except NewsletterError as error:
            preview_error = error.message
    page = render_template(
        "admin/template_form.html",
        form=form,
        template=template,
        problem=problem,
        variables=template_editing.VARIABLES[kind],
        action_form=ActionForm(),
        text_preview=text_preview,
        preview_error=preview_error,
    )
    return page, 422 if (form.errors or problem) else 200


@bp.route("/templates/new", methods=["GET", "POST"])
def template_new() -> str | Response | tuple[str, int]:
    """A new template; it is saved only once both parts render with sample data."""
    form = TemplateForm()
    problem: dict[str, Any] = {}
    if request.method == "GET":
        starter = default_template()
        form.mjml.data, form.text.data = starter.mjml, starter.text
    elif form.validate_on_submit():
        try:
            template = template_editing.create_template(
                name=form.name.data or "", kind=form.kind.data or "issue",
                mjml=form.mjml.data or "", text=form.text.data or "",
            )
        except NewsletterError as error:
            problem = _show_error(form, error)
        else:
            flash(f"Template “{template.name}” saved.", "success")
            return redirect(url_for("admin.template", template_id=template.id))
    return _editor(form, None, problem)


@bp.route("/templates/<int:template_id>", methods=["GET", "POST"])
def template(template_id: int) -> str | Response | tuple[str, int]:
    """A template: the editor (read-only for a built-in one) and its preview."""
    item = get_template(template_id)
    form = TemplateForm(obj=None if request.method == "POST" else item)
    problem: dict[str, Any] = {}
    if request.method == "GET":
        form.kind.data = item.kind.value
    elif item.builtin:
        abort(409)
    elif form.validate_on_submit():
        try:
            template_editing.update_template(
                item.id, name=form.name.data or "", kind=form.kind.data or "issue",
                mjml=form.mjml.data or "", text=form.text.data or "",
            )
        except NewsletterError as error:
            problem = _show_error(form, error)
        else:
            flash(f"Template “{item.name}” saved.", "success")
            return redirect(url_for("admin.template", template_id=item.id))
    return _editor(form, item, problem)


@bp.get("/templates/<int:template_id>/preview.html")
def template_preview(template_id: int) -> Response:
    """The saved template rendered with sample data, for the editor's iframe."""
    item = get_template(template_id)
    try:
        html = template_editing.preview(item)[0]
    except NewsletterError as error:
        return framed_html(render_template("admin/preview_error.html", message=error.message), 422)
    return framed_html(html)


@bp.post("/templates/<int:template_id>/copy")
def template_copy(template_id: int) -> Response:
    """Copy a template (a built-in one, to change it) and open the copy."""
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        copy = template_editing.copy_template(template_id)
    except NewsletterError as error:
        flash(error.message, "error")
        return redirect(url_for("admin.template", template_id=template_id))
    flash(f"Copied to “{copy.name}”. Rename it and change what you like.", "success")
    return redirect(url_for("admin.template", template_id=copy.id))


@bp.post("/templates/<int:template_id>/delete")
def template_delete(template_id: int) -> Response:
    """Delete a template (refused, with why, when it is built in or an unsent issue uses it)."""
    if not ActionForm().validate_on_submit():
        abort(400)
    item = get_template(template_id)
    name = item.name
    try:
        template_editing.delete_template(template_id)
    except NewsletterError as error:
        flash(f"Not deleted: {error.message}", "error")
        return redirect(url_for("admin.template", template_id=template_id))
    flash(f"Template “{name}” deleted.", "success")
    return redirect(url_for("admin.templates"))
