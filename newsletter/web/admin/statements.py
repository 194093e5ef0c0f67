"""Statements: the list, import by upload or paste, and one statement rendered."""

from __future__ import annotations

from flask import redirect, render_template, url_for
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select
from werkzeug.utils import secure_filename
from werkzeug.wrappers import Response

from newsletter.auth.permissions import may_open
from newsletter.content.models import Statement
from newsletter.content.statements import get_statement, statement_html
from newsletter.content.writing import mark_previewed
from newsletter.errors import NewsletterError
from newsletter.extensions import db
from newsletter.web.admin.blueprint import bp
from newsletter.web.admin.forms import ActionForm, StatementImportForm
from newsletter.web.admin.statement_import import import_upload, is_zip


def _newest_first() -> list[Statement]:
    return list(
        db.session.scalars(
            select(Statement).order_by(
                Statement.date.desc().nulls_last(), Statement.created_at.desc()
            )
        )
    )


def _read_upload(form: StatementImportForm) -> tuple[str, str | None]:
    """The Markdown text and its file name (None when pasted)."""
    upload = form.file.data
    if upload:
        # The name only helps the slug and date (Jekyll's YYYY-MM-DD-slug.md); never a path.
        return upload.read().decode("utf-8-sig"), secure_filename(upload.filename or "") or None
    return (form.markdown.data or "").replace("\r\n", "\n"), None


@bp.route("/statements", methods=["GET", "POST"])
def statements() -> str | Response | tuple[str, int]:
    """Every statement, newest first, with the import form."""

    form = StatementImportForm()
    if form.validate_on_submit():
        try:
            if is_zip(form.file.data):
                # a zip of posts: a summary of what each did, on the list of statements
                import_upload(form.file.data)
                return redirect(url_for("admin.statements"))
            text, filename = _read_upload(form)
            statement = import_upload(text, filename)
        except UnicodeDecodeError:
            form.file.errors = ["The file is not UTF-8 text."]
        except NewsletterError as error:
            target = form.file if form.file.data else form.markdown
            target.errors = [*target.errors, error.message]
        else:
            return redirect(url_for("admin.statement", statement_id=statement.id))
    status = 422 if form.errors else 200
    return render_template("admin/statements.html", form=form, statements=_newest_first()), status


@bp.get("/statements/<int:statement_id>")
def statement(statement_id: int) -> str:
    """One statement as readers will see it, with its front matter and source."""

    item = get_statement(statement_id)
    if may_open(current_user, "admin.statement_edit"):
        mark_previewed(item)  # an editor has now seen it rendered
    # statement_html is cleaned with nh3 (allow-listed tags and URL schemes), so it is safe.
    html = Markup(statement_html(item))  # noqa: S704
    return render_template(
        "admin/statement.html", statement=item, html=html, delete_form=ActionForm()
    )
